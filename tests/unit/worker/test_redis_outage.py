"""The worker's Redis writers share one outage log: a lost Redis is one line, then its end."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.sinks.redis_outage import REMIND_EVERY_S, RedisOutageLog


class _Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_one_line_a_reminder_a_minute_and_its_end_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    outage = RedisOutageLog(clock)
    down = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connect call failed")
    with caplog.at_level(logging.INFO, logger="streams.sinks.redis_outage"):
        outage.answered()  # no outage: nothing to say
        outage.failed("snapshots", down, pending=4)
        for tick in range(239):  # a minute of failed snapshot ticks (0.25 s) and rankings rebuilds
            clock.now += 0.25
            outage.failed("rankings" if tick % 2 else "snapshots", down)
        assert outage.in_outage
        clock.now += REMIND_EVERY_S - 239 * 0.25
        outage.failed("snapshots", down)
        clock.now += 12.5
        outage.answered()
        assert not outage.in_outage
        outage.answered()
        outage.failed("snapshots", down)  # a new outage, with a count of its own
    lines = [r for r in caplog.records if r.name == "streams.sinks.redis_outage"]
    assert [r.event for r in lines] == [  # type: ignore[attr-defined]
        "redis_outage_started", "redis_outage_continues", "redis_outage_ended", "redis_outage_started"]
    started, reminder, ended, _ = lines
    assert "snapshots" in started.getMessage() and "Connect call failed" in started.getMessage()
    assert started.pending == 4 and started.levelno == logging.WARNING  # type: ignore[attr-defined]
    assert reminder.failed_attempts == 241 and reminder.outage_s == 60.0  # type: ignore[attr-defined]
    assert reminder.levelno == logging.ERROR
    assert ended.failed_attempts == 241 and ended.outage_s == 72.5  # type: ignore[attr-defined]
    assert outage.in_outage
