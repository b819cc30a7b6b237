"""One log line when the broker goes away and one when it is back, instead of a flood.

While the broker is down, aiokafka logs every failed connection, metadata request,
heartbeat and fetch of every client of a worker (ingest consumer and producer, Faust's
consumer and producer, control feed): about 150 lines a second per worker. This filter,
on the worker's log handler, lets the first such line through as the start of an outage,
counts the others, and logs the outage's end with its duration and count when the worker
sees the broker answer again (`broker_answered`). A reminder goes out every minute while
the outage lasts, so a long outage is never silent.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

# Messages that aiokafka (and Faust above it) log for a broker that does not answer.
_CONNECTION_ERROR_MARKERS = (
    "Unable connect",
    "Unable to connect",
    "Unable to request metadata",
    "Unable to update metadata",
    "KafkaConnectionError",
    "NodeNotReadyError",
    "Connection at",
    "coordinator dead",
    "Coordinator dead",
    "Failed fetch messages",
    "Got error produce response",
    "ConnectionRefusedError",
    "Connect attempt",
    "Heartbeat send request failed",
    "RequestTimedOutError",
    "Closing the connection",
)
_CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode")

REMIND_EVERY_S = 60.0


def is_connection_error(record: logging.LogRecord) -> bool:
    if not record.name.startswith(_CLIENT_LOGGERS):
        return False
    text = record.getMessage()
    return any(marker in text for marker in _CONNECTION_ERROR_MARKERS)


class OutageLogFilter(logging.Filter):
    """A handler filter; thread-safe (aiokafka runs Faust's consumer in a thread)."""

    def __init__(self, clock: object = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._suppressed = 0
        self._reminded: float = 0.0

    @property
    def in_outage(self) -> bool:
        return self._started is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == __name__ or not is_connection_error(record):
            return True
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            if self._started is None:
                self._started, self._suppressed, self._reminded = now, 0, now
                record.msg = f"broker unreachable, further connection errors are counted until it answers: {record.getMessage()}"
                record.args = ()
                record.event = "broker_outage_started"
                return True
            self._suppressed += 1
            if now - self._reminded < REMIND_EVERY_S:
                return False
            self._reminded = now
            started, suppressed = self._started, self._suppressed
        log.error("broker still unreachable", extra={
            "event": "broker_outage_continues", "outage_s": round(now - started, 1), "suppressed_lines": suppressed})
        return False

    def broker_answered(self) -> None:
        """The worker has seen the broker answer: end the outage, if there was one."""
        with self._lock:
            if self._started is None:
                return
            now = self._clock()  # type: ignore[operator]
            started, suppressed = self._started, self._suppressed
            self._started = None
        log.warning("broker reachable again", extra={
            "event": "broker_outage_ended", "outage_s": round(now - started, 1), "suppressed_lines": suppressed})
