"""The ingest stage's child processes: reports reach the worker, and each side's end ends the other.

The children are real spawned processes; their broker is a closed port (the stage retries it
with backoff), so what is tested is the process plumbing, not Kafka (tests/integration runs
every worker with one ingest process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.domain.registry import Registry
from streams.errors import ExternalServiceError
from streams.settings import load_settings
from streams.worker.health import Progress
from streams.worker.ingest_process import IngestProcesses, IngestReport, _Child


def processes(count: int = 1, dead: list | None = None, unauthenticated: list | None = None) -> IngestProcesses:
    settings = load_settings({"broker": "kafka://127.0.0.1:1", "ingest_processes": count}, environ={})
    return IngestProcesses(settings, Registry.load(), None,
                           lambda t, n: (dead if dead is not None else []).append((t, n)),
                           lambda a, r, n: (unauthenticated if unauthenticated is not None else []).append((a, r, n)))


def test_reports_of_every_child_make_the_stats_and_the_counts() -> None:
    dead: list = []
    unauthenticated: list = []
    ingest = processes(2, dead, unauthenticated)
    first, second = _Child(None, None), _Child(None, None)  # type: ignore[arg-type]
    ingest._children = [first, second]
    ingest._take(first, IngestReport({0: Progress(10, 2), 1: Progress(5, 0)}, 3, {"received": 2}, {}))
    ingest._take(second, IngestReport({2: Progress(7, 1)}, 4, {}, {("T01", "bad_signature"): 1}))
    ingest._take(first, IngestReport({0: Progress(12, 0)}, 5, {"unknown": 1}, {}))  # partition 1 moved away
    assert ingest.stats.progress == {0: Progress(12, 0), 2: Progress(7, 1)}
    assert ingest.stats.delivered == 5 + 4
    assert dead == [("received", 2), ("unknown", 1)]
    assert unauthenticated == [("T01", "bad_signature", 1)]


def test_a_child_that_dies_ends_the_ingest_task_and_a_stop_ends_the_children() -> None:
    async def scenario() -> tuple[list[int], BaseException | None]:
        ingest = processes(2)
        task = asyncio.create_task(ingest.run())
        deadline = time.monotonic() + 30
        while len(ingest._children) < 2 or any(c.last is None for c in ingest._children):
            assert time.monotonic() < deadline, "the children sent no report within 30 s"
            await asyncio.sleep(0.05)
        children = [c.process for c in ingest._children]
        os.kill(children[0].pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(task, 15)
            error = None
        except ExternalServiceError as exc:
            error = exc
        return [p.exitcode for p in children], error

    exit_codes, error = asyncio.run(scenario())
    assert error is not None and "ended" in str(error)
    # The killed one, and the other stopped by the worker's SIGTERM, cleanly (0) within the timeout.
    assert exit_codes == [-signal.SIGKILL, 0]


def test_children_die_with_a_killed_worker(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import asyncio, pathlib, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
        from tests.unit.worker.test_ingest_process import processes

        async def main():
            ingest = processes(1)
            task = asyncio.create_task(ingest.run())
            while not ingest._children or ingest._children[0].last is None:
                await asyncio.sleep(0.05)
            pathlib.Path({str(pids)!r}).write_text(str(ingest._children[0].process.pid))
            await task

        asyncio.run(main())
    """)])
    try:
        deadline = time.monotonic() + 30
        while not pids.exists() or not pids.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "the child never reported"
            time.sleep(0.05)
        child = int(pids.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the ingest process outlived its killed worker"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2:].split()[0]


@pytest.mark.parametrize("value", ["-1", "17", "x"])
def test_a_bad_process_count_is_a_config_error(value: str) -> None:
    from streams.errors import ConfigError

    with pytest.raises(ConfigError, match="EMC_INGEST_PROCESSES"):
        load_settings({}, environ={"EMC_INGEST_PROCESSES": value})
