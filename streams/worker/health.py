"""A worker's health: crash-only task supervision, the stall detector, /healthz and /readyz.

A worker that lives on half-alive serves stale figures that are published; a dead one is
restarted by its supervisor (systemd, Docker, Kubernetes). So every long-running task is
watched, and a task that ends or raises ends the process with one JSON log line and a
non-zero exit. A stage that has messages to consume but does not advance (the stall of
issue 18: a Faust consumer that rejoined its group and never fetched again) fails
`/healthz` after `stall_after_s` and ends the process after `stall_exit_s`.

The HTTP server runs in its own thread (as prometheus_client's does), so that `/healthz`
still answers when the event loop is blocked, and says so: the loop beats every second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.sinks.metrics_server import authorized

log = logging.getLogger(__name__)

# Exit codes a supervisor can tell apart; 0 is a requested stop only.
EXIT_TASK_ENDED = 70
EXIT_STALLED = 71
EXIT_BROKER_UNREACHABLE = 72

# The event loop is considered blocked when it has not beaten for this long.
LOOP_BLOCKED_AFTER_S = 10.0

PartitionKey = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a consumer of one partition stands: the offset it has done up to, and how many
    messages of the partition are past it."""

    done: int
    lag: int


@dataclass
class _Watched:
    done: int
    since: float  # monotonic time when `done` last moved or lag was last 0


class ProgressWatch:
    """Which partitions have lag but have not advanced for `stall_after_s` (pure, no I/O)."""

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._watched: dict[PartitionKey, _Watched] = {}

    def observe(self, now: float, progress: Mapping[PartitionKey, Progress]) -> None:
        """Record one round of measurements; partitions not in `progress` are forgotten."""
        for key in list(self._watched):
            if key not in progress:
                del self._watched[key]
        for key, seen in progress.items():
            known = self._watched.get(key)
            if known is None or seen.lag <= 0 or seen.done != known.done:
                self._watched[key] = _Watched(seen.done, now)

    def forget(self) -> None:
        """Progress cannot be measured (e.g. the broker is unreachable): start afresh."""
        self._watched.clear()

    def stalled(self, now: float) -> dict[PartitionKey, float]:
        """Partitions with lag whose position has not moved for `stall_after_s`, with how long."""
        return {key: now - w.since for key, w in self._watched.items() if now - w.since >= self.stall_after_s}


class CatchUpStreak:
    """Catch-ups in a row per partition with no delivery by the consumer in between (pure).

    A catch-up keeps the counts exact when Faust's consumer stops delivering a partition it
    holds, at ~15 s of extra latency each time; a consumer that never delivers again would
    be masked for ever. So after `limit` catch-ups in a row the worker exits and its
    supervisor starts a clean consumer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._streak: dict[int, int] = {}

    def delivered(self, partition: int) -> None:
        """The consumer delivered a message of `partition`: it is not stuck."""
        self._streak.pop(partition, None)

    def caught_up(self, partition: int) -> int:
        """One more catch-up of `partition`; the catch-ups in a row so far."""
        self._streak[partition] = self._streak.get(partition, 0) + 1
        return self._streak[partition]

    def exhausted(self, partition: int) -> bool:
        return self._streak.get(partition, 0) >= self.limit


class Unreachable:
    """How long the broker has not answered (pure): started at the first failed measurement,
    ended by the first one that succeeds."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0

    def failed(self, now: float) -> float:
        """One more failed measurement at `now`; seconds since the first of this run."""
        if self.since is None:
            self.since = now
        self.failures += 1
        return now - self.since

    def answered(self) -> None:
        self.since, self.failures = None, 0


@dataclass
class Health:
    """What /healthz and /readyz report; written by the event loop, read by the HTTP thread."""

    stall_after_s: float
    beat: float = field(default_factory=time.monotonic)
    stalled: dict[PartitionKey, float] = field(default_factory=dict)
    ended_task: str | None = None
    not_ready: tuple[str, ...] = ("starting",)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def liveness(self, now: float) -> list[str]:
        """Why the worker is not healthy; empty when it is."""
        with self._lock:
            problems = []
            if now - self.beat > LOOP_BLOCKED_AFTER_S:
                problems.append(f"event loop has not answered for {now - self.beat:.0f} s")
            if self.ended_task is not None:
                problems.append(f"task {self.ended_task} ended")
            for (topic, partition), seconds in sorted(self.stalled.items()):
                problems.append(f"{topic}[{partition}] has lag and has not advanced for {seconds:.0f} s")
            return problems

    def readiness(self, now: float) -> list[str]:
        """Why the worker should not serve yet (or any more); empty when it should."""
        problems = self.liveness(now)
        with self._lock:
            return [*problems, *self.not_ready]

    def update(self, **values: object) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)


def exit_now(code: int, msg: str, **fields: object) -> None:
    """Log one line and end the process at once, without Faust's shutdown (which can itself
    hang on an unreachable broker). Crash-only: every state is recovered from Kafka at start."""
    log.critical(msg, extra=fields)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


def supervised(
    name: str, body: Callable[[], Awaitable[None]], health: Health, is_stopping: Callable[[], bool],
) -> Callable[[], Awaitable[None]]:
    """`body` as a task that ends the process when it ends or raises anything unexpected.

    Cancellation is how the worker stops its tasks, and at a stop a task may end: both are
    let through then."""

    async def run() -> None:
        try:
            await body()
        except asyncio.CancelledError:
            if is_stopping():
                raise
            reason = "cancelled"
        except BaseException as exc:  # noqa: BLE001 - every failure of a task is fatal
            if is_stopping():
                raise
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if is_stopping():
                return
            reason = "returned"
        health.update(ended_task=name)
        exit_now(EXIT_TASK_ENDED, "worker task ended, exiting", task=name, error=reason, event="task_ended")

    run.__name__ = name.replace("-", "_")
    return run


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: Health
    basic_auth: bytes | None = None  # the Authorization header /metrics requires (health probes stay open)
    routes: Mapping[str, Callable[[BaseHTTPRequestHandler, str], None]] = {}  # path -> handler(request, query), behind the same auth

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path, _, query = self.path.partition("?")
        if path == "/metrics" or path in self.routes:
            if not authorized(self.headers.get("Authorization"), self.basic_auth):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="EMC metrics"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "/metrics":
                self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
            else:
                self.routes[path](self, query)
        elif path in ("/healthz", "/readyz"):
            now = time.monotonic()
            problems = self.health.liveness(now) if path == "/healthz" else self.health.readiness(now)
            body = orjson.dumps({"ok": not problems, "problems": problems})
            self._send(503 if problems else 200, body, "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass  # probes every few seconds would flood the log


def serve_http(host: str, port: int, registry: CollectorRegistry, health: Health,
               tls_context: ssl.SSLContext | None = None, basic_auth: bytes | None = None,
               routes: Mapping[str, Callable[[BaseHTTPRequestHandler, str], None]] | None = None) -> ThreadingHTTPServer:
    """/metrics, /healthz, /readyz and `routes` (the dossier endpoint) on one port, in a daemon
    thread; HTTPS with `tls_context`, /metrics and `routes` behind basic auth with `basic_auth`
    (streams/sinks/metrics_server.py)."""
    handler = type("WorkerHTTPHandler", (_Handler,), {"registry": registry, "health": health, "basic_auth": basic_auth,
                                                       "routes": dict(routes or {})})
    server = ThreadingHTTPServer((host, port), handler)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
