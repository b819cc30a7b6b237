"""The ingest stage in processes of their own, so that a worker uses more than one core.

The ingest stage (validate, dead-letter, batch by agency) and the state stage meet only
through the batch topic, so they need not share an interpreter: `emc worker` starts
`EMC_INGEST_PROCESSES` children (default 1; 0 runs the stage inside the worker process, as
before), each an `IngestStage` and a member of the ingest consumer group, and stays the one
command and the one `/metrics`. Each child reports to the worker over a pipe, every
`REPORT_INTERVAL_S` and once more when it stops:

- the progress of the input partitions it holds, and its deliveries (the stall detector and
  the input-lag gauge read them as they read the in-process stage's `stats`);
- its dead letters by event type and its unauthenticated events by agency and reason, counted
  once the dead-letter topic has acknowledged them, which the worker adds to its metrics.

Crash-only, as the rest of the worker: a child that dies ends the worker's ingest task, which
ends the worker (its supervisor restarts both); a worker that dies takes its children with it
(`PR_SET_PDEATHSIG`, and a parent check each report for systems without it). Exactness does not
depend on either: ingest commits input offsets only after its batches are acknowledged, and the
state stage recognises replayed events by their source offsets.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from streams.domain.registry import Registry
from streams.domain.signatures import Keyring
from streams.errors import ExternalServiceError
from streams.settings import Settings
from streams.worker.health import Progress
from streams.worker.ingest import DeadLetter, IngestStage, IngestStats

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.2
# A child asked to stop gets this long to stop its clients (each bounded by the stage's own
# CLIENT_STOP_TIMEOUT_S) before it is killed: the worker's whole stop must stay under ~8 s.
CHILD_STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one child tells the worker: its state now, and its counts since its last report."""

    progress: dict[int, Progress]  # input partitions it holds now
    delivered: int  # deliveries since the child started
    dead_letters: dict[str, int]  # event type -> dead letters acknowledged since the last report
    unauthenticated: dict[tuple[str, str], int]  # (agency, reason) -> events since the last report


@dataclass(frozen=True, slots=True)
class _ChildSpec:
    settings: Settings
    registry: Registry
    keyring: Keyring | None
    parent_pid: int


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    last: IngestReport | None = None


@dataclass
class IngestProcesses:
    """Stands where the in-process `IngestStage` stands in the worker: `run()` and `stats`."""

    settings: Settings
    registry: Registry
    keyring: Keyring | None
    count_dead_letters: Callable[[str, int], None]  # (event type, n)
    count_unauthenticated: Callable[[str, str, int], None]  # (agency, reason, n)
    stats: IngestStats = field(default_factory=IngestStats)
    _children: list[_Child] = field(default_factory=list)

    async def run(self) -> None:
        """Start the children and take their reports until one of them ends (an error: the
        worker's task supervisor ends the worker) or the task is cancelled (a stop)."""
        context = multiprocessing.get_context("spawn")  # not fork: the worker runs threads
        spec = _ChildSpec(self.settings, self.registry, self.keyring, os.getpid())
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[str] = loop.create_future()
        try:
            for number in range(self.settings.ingest_processes):
                receiving, sending = context.Pipe(duplex=False)
                process = context.Process(target=run_child, args=(spec, sending), name=f"emc-ingest-{number}")
                process.start()
                sending.close()
                child = _Child(process, receiving)
                self._children.append(child)
                loop.add_reader(receiving.fileno(), self._receive, child, ended)
            log.info("ingest runs in %d processes", len(self._children),
                     extra={"event": "ingest_processes", "pids": [c.process.pid for c in self._children]})
            name = await ended
            raise ExternalServiceError(f"ingest process {name} ended")
        finally:
            for child in self._children:
                loop.remove_reader(child.connection.fileno())
            await asyncio.shield(self._stop())

    def _receive(self, child: _Child, ended: asyncio.Future[str]) -> None:
        try:
            while child.connection.poll():
                self._take(child, child.connection.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(child.connection.fileno())
            if not ended.done():
                ended.set_result(f"{child.process.name} (pid {child.process.pid})")

    def _drain(self, child: _Child) -> None:
        """Take the reports an ended child left in its pipe, up to its end of file."""
        try:
            while child.connection.poll():
                self._take(child, child.connection.recv())
        except EOFError:
            return  # every report is taken

    def _take(self, child: _Child, report: IngestReport) -> None:
        child.last = report
        for event_type, n in report.dead_letters.items():
            self.count_dead_letters(event_type, n)
        for (agency, reason), n in report.unauthenticated.items():
            self.count_unauthenticated(agency, reason, n)
        progress: dict[int, Progress] = {}
        for other in self._children:
            if other.last is not None:
                progress.update(other.last.progress)
        self.stats.progress = progress
        self.stats.delivered = sum(c.last.delivered for c in self._children if c.last is not None)

    async def _stop(self) -> None:
        """SIGTERM to each child (it stops its clients and sends its last report), then wait;
        a child still there after CHILD_STOP_TIMEOUT_S is killed."""
        children, self._children = self._children, []
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
        loop = asyncio.get_running_loop()
        for child in children:
            await loop.run_in_executor(None, child.process.join, CHILD_STOP_TIMEOUT_S)
            if child.process.is_alive():
                log.warning("ingest process %s did not stop in %.0f s: killed", child.process.pid, CHILD_STOP_TIMEOUT_S,
                            extra={"event": "ingest_process_killed", "pid": child.process.pid})
                child.process.kill()
                await loop.run_in_executor(None, child.process.join)
            self._drain(child)  # the last report: dead letters acknowledged while it stopped
            child.connection.close()
            if child.process.exitcode not in (0, -signal.SIGTERM, -signal.SIGKILL):
                log.warning("ingest process %s exited with %s", child.process.pid, child.process.exitcode,
                            extra={"event": "ingest_process_exit", "pid": child.process.pid,
                                   "exitcode": child.process.exitcode})


def run_child(spec: _ChildSpec, connection: Connection) -> None:
    """The body of one ingest process."""
    from streams.logs import configure
    from streams.worker.outage_log import OutageLogFilter

    _die_with_parent(spec.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the worker stops its children
    configure(spec.settings.log_level, OutageLogFilter())
    try:
        asyncio.run(_child_main(spec, connection))
    finally:
        connection.close()


async def _child_main(spec: _ChildSpec, connection: Connection) -> None:
    from streams.worker.authentication import EventAuthenticator

    dead_letters: Counter[str] = Counter()
    unauthenticated: Counter[tuple[str, str]] = Counter()

    def count_dead_letter(letter: DeadLetter) -> None:
        dead_letters[letter.event_type] += 1

    settings = spec.settings
    authenticator = None if settings.auth == "off" or spec.keyring is None else EventAuthenticator(
        settings.auth, spec.keyring, spec.registry, lambda agency, reason: unauthenticated.update([(agency, reason)]))
    stage = IngestStage(settings, spec.registry, count_dead_letter, authenticator)

    def report() -> None:
        connection.send(IngestReport(dict(stage.stats.progress), stage.stats.delivered, dict(dead_letters),
                                     dict(unauthenticated)))
        dead_letters.clear()
        unauthenticated.clear()

    async def report_forever() -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            if os.getppid() != spec.parent_pid:  # the worker is gone (no PR_SET_PDEATHSIG here)
                raise ExternalServiceError("the worker process is gone")
            report()

    main = asyncio.current_task()
    if main is None:
        raise ExternalServiceError("ingest process: no running task")
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    running = asyncio.create_task(stage.run())
    reporter = asyncio.create_task(report_forever())
    try:
        done, _ = await asyncio.wait([running, reporter], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # raises what ended it: the process exits non-zero, and the worker with it
    except asyncio.CancelledError:
        log.info("ingest process stopping", extra={"event": "ingest_process_stop"})
    finally:
        for task in (running, reporter):
            task.cancel()
        # IngestStage.run stops its clients when cancelled; what ended the tasks was raised above.
        await asyncio.gather(running, reporter, return_exceptions=True)
        if not connection.closed:
            try:
                report()  # the last dead letters acknowledged
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The worker is gone, and its metrics with it; its successor re-reads from
                # the committed offsets.
                log.info("ingest process: no worker to take the last report: %r", exc)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the worker dies (a SIGKILLed worker cannot stop it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: report_forever notices the parent's exit instead
    if os.getppid() != parent_pid:  # the worker died before prctl took effect
        os._exit(1)
