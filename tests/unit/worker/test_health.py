"""Worker health (issue 18): the stall detector's rule, /healthz and /readyz, crash-only task
supervision, and the outage log filter."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from streams.local.stack import free_port
from streams.worker.health import (
    EXIT_TASK_ENDED,
    LOOP_BLOCKED_AFTER_S,
    Health,
    Progress,
    ProgressWatch,
    serve_http,
)
from streams.worker.outage_log import REMIND_EVERY_S, OutageLogFilter

KEY = ("emc.dossier-batches.v1", 0)


# -- the stall rule ----------------------------------------------------------------------------

@given(
    stall_after=st.floats(min_value=1, max_value=100),
    steps=st.lists(st.tuples(st.floats(min_value=0.01, max_value=50), st.booleans(), st.integers(0, 5)), max_size=40),
)
def test_a_partition_is_stalled_exactly_when_it_had_lag_and_did_not_move_for_the_bound(stall_after, steps) -> None:
    """Reference model: the partition stalls when, since the last round where its position moved
    or its lag was 0, at least `stall_after` seconds have passed."""
    watch = ProgressWatch(stall_after)
    now, done, since = 0.0, 0, 0.0
    watch.observe(now, {KEY: Progress(done, 0)})
    for elapsed, moved, lag in steps:
        now += elapsed
        if moved:
            done += 1
        if moved or lag == 0:
            since = now
        watch.observe(now, {KEY: Progress(done, lag)})
        stalled = watch.stalled(now)
        if now - since >= stall_after:
            assert stalled == {KEY: pytest.approx(now - since)}
        else:
            assert stalled == {}


def test_partitions_no_longer_reported_and_unmeasurable_rounds_are_forgotten() -> None:
    watch = ProgressWatch(5)
    watch.observe(0, {KEY: Progress(3, 10), ("t", 1): Progress(0, 1)})
    watch.observe(6, {KEY: Progress(3, 10)})  # ("t", 1) was revoked
    assert watch.stalled(6) == {KEY: 6}
    watch.forget()  # the broker did not answer: no judgement on what was seen before
    watch.observe(7, {KEY: Progress(3, 10)})
    assert watch.stalled(11) == {}
    assert watch.stalled(12) == {KEY: 5}


# -- /healthz and /readyz ------------------------------------------------------------------------

def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_probes_and_metrics_share_the_metrics_port() -> None:
    registry = CollectorRegistry()
    Counter("emc_test_total", "a test counter", registry=registry).inc()
    health = Health(stall_after_s=60)
    port = free_port()
    server = serve_http("127.0.0.1", port, registry, health)
    try:
        status, body = _get(port, "/metrics")
        assert status == 200 and b"emc_test_total 1.0" in body
        assert _get(port, "/readyz") == (503, b'{"ok":false,"problems":["starting"]}')
        assert _get(port, "/healthz") == (200, b'{"ok":true,"problems":[]}')

        health.update(not_ready=(), beat=time.monotonic())
        assert _get(port, "/readyz")[0] == 200
        health.update(stalled={KEY: 75.4})
        status, body = _get(port, "/healthz")
        assert status == 503
        assert json.loads(body)["problems"] == ["emc.dossier-batches.v1[0] has lag and has not advanced for 75 s"]
        assert _get(port, "/readyz")[0] == 503  # not live is not ready either

        health.update(stalled={}, beat=time.monotonic() - LOOP_BLOCKED_AFTER_S - 1, ended_task="ingest")
        problems = json.loads(_get(port, "/healthz")[1])["problems"]
        assert problems[0].startswith("event loop has not answered for") and problems[1] == "task ingest ended"
        assert _get(port, "/other")[0] == 404
    finally:
        server.shutdown()


# -- crash-only tasks --------------------------------------------------------------------------

_SUPERVISED = textwrap.dedent("""
    import asyncio, sys
    from streams.logs import configure
    from streams.worker.health import Health, supervised
    configure("warn")
    stopping = sys.argv[1] == "stopping"

    async def failing():
        await asyncio.sleep(0.05)
        raise RuntimeError("the feed broke")

    async def main():
        task = asyncio.ensure_future(supervised("control feed", failing, Health(60), lambda: stopping)())
        try:
            await task
        except RuntimeError:
            print("raised through while stopping")
        await asyncio.sleep(2)  # a supervised failure ends the process before this returns

    asyncio.run(main())
""")


def test_a_task_that_raises_ends_the_process_with_one_json_line() -> None:
    result = subprocess.run([sys.executable, "-c", _SUPERVISED, "running"], capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_TASK_ENDED
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "task_ended" and lines[0]["task"] == "control feed"
    assert lines[0]["error"] == "RuntimeError: the feed broke" and lines[0]["level"] == "critical"


def test_while_stopping_a_task_ending_is_not_a_failure() -> None:
    result = subprocess.run([sys.executable, "-c", _SUPERVISED, "stopping"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "raised through while stopping", "")


# -- the outage log ------------------------------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(logger: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, msg, (), None)


def test_an_outage_is_logged_once_then_its_end_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    outage = OutageLogFilter(clock)
    down = "Unable connect to node with id 111: [Errno 111] Connect call failed ('127.0.0.1', 9092)"
    first = _record("aiokafka", down)
    assert outage.filter(first) and first.event == "broker_outage_started"  # type: ignore[attr-defined]
    assert first.getMessage().startswith("broker unreachable")
    passed = [outage.filter(_record("aiokafka.conn", down)) for _ in range(149)]
    assert not any(passed)
    assert outage.filter(_record("streams.sinks.redis_snapshots", "redis unreachable"))  # not the broker's
    assert outage.filter(_record("aiokafka", "Heartbeat failed for group emc because it is rebalancing"))
    with caplog.at_level(logging.INFO, logger="streams.worker.outage_log"):
        clock.now += REMIND_EVERY_S
        assert not outage.filter(_record("aiokafka", down))
        clock.now += 12.5
        outage.broker_answered()
        outage.broker_answered()  # no outage any more: nothing to say
    reminder, end = (r for r in caplog.records if r.name == "streams.worker.outage_log")
    assert reminder.event == "broker_outage_continues" and reminder.suppressed_lines == 150  # type: ignore[attr-defined]
    assert end.event == "broker_outage_ended" and end.suppressed_lines == 150 and end.outage_s == 72.5  # type: ignore[attr-defined]
    assert not outage.in_outage
