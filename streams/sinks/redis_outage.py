"""One log line when Redis goes away and one when it is back, instead of one per attempt.

A worker writes to Redis from several loops (the snapshot timer every 0.25 s, the leader's
rankings and bulletin gauges); each retries on its own schedule, and each used to log every
failed attempt, a traceback among them. They share one `RedisOutageLog`: the first failure
is logged as the start of an outage (`redis_outage_started`), later ones are counted, a
reminder goes out every minute while it lasts (`redis_outage_continues`), and the first
success logs its end with its duration and the failures counted (`redis_outage_ended`).
The broker's counterpart is streams/worker/outage_log.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

REMIND_EVERY_S = 60.0


class RedisOutageLog:
    """Shared by the worker's Redis writers; all run on the worker's event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: float | None = None
        self._failures = 0
        self._reminded = 0.0

    @property
    def in_outage(self) -> bool:
        return self._started is not None

    def failed(self, what: str, exc: BaseException, **fields: object) -> None:
        """A write (`what`: snapshots, rankings, ...) failed because Redis did not answer;
        `fields` go on the first line (e.g. the snapshots still pending)."""
        now = self._clock()
        self._failures += 1
        if self._started is None:
            self._started, self._failures, self._reminded = now, 1, now
            log.warning("redis unreachable, %s kept for retry; further failures are counted until it answers: %s",
                        what, exc, extra={"event": "redis_outage_started", **fields})
            return
        if now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            log.error("redis still unreachable: %s", exc, extra={
                "event": "redis_outage_continues", "outage_s": round(now - self._started, 1),
                "failed_attempts": self._failures})

    def answered(self) -> None:
        """A write went through: end the outage, if there was one."""
        if self._started is None:
            return
        now = self._clock()
        log.warning("redis reachable again", extra={
            "event": "redis_outage_ended", "outage_s": round(now - self._started, 1), "failed_attempts": self._failures})
        self._started, self._failures = None, 0
