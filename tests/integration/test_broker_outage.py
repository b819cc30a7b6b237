"""A broker outage in compressed time (issue 18 item 2): shorter than EMC_STALL_EXIT_AFTER the
worker waits and resumes by itself, counts exact; longer, it logs why once and exits 72 for
its supervisor (a worker started again resumes from the committed offsets like after any
crash: tests/integration/test_crash.py). And a stop with the broker gone is quiet (item 5).

The broker here does not answer because it is frozen (SIGSTOP, then SIGCONT): to its clients
that is a broker gone (requests time out), and its memory log is still there when it thaws,
so the test needs neither S3 storage nor a 5-minute wait. `test_broker_restart.py` kills
and restarts a broker with its log in S3.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.stack import start_tansu
from streams.simulation.simulator import SimulationConfig, simulate
from streams.worker.faust_transport import stop_quietly
from streams.worker.health import EXIT_BROKER_UNREACHABLE
from tests.integration.conftest import events_handled, redis_counts, wait_until
from tests.support.oracle import batch_counts_of_messages

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
EXIT_AFTER_S = 10.0  # EMC_STALL_EXIT_AFTER of this test: the 300 s default, compressed


@pytest.fixture
def broker_under_test(tmp_path):
    """A broker of this test alone: freezing the session's broker would stall other tests."""
    process = start_tansu(tmp_path / "tansu")
    yield process
    process.process.send_signal(signal.SIGCONT)
    process.stop()


@pytest.fixture
def settings(settings):
    return replace(settings, stall_after_s=5.0, stall_exit_s=EXIT_AFTER_S)


def _messages() -> list:
    agencies = [a.code for a in REGISTRY.valid_on(datetime(2025, 1, 1).date())][:6]
    config = SimulationConfig(agencies=agencies, dossiers=120, seed=72,
                              start=datetime(2024, 12, 20, tzinfo=timezone.utc), end=datetime(2025, 1, 10, tzinfo=timezone.utc),
                              duplicate_share=0.05, correction_share=0.05, late_share=0.1, bad_share=0.0)
    return list(simulate(config))


def _wait_exact(redis_client, settings, sent: list, worker) -> None:
    expected = batch_counts_of_messages(sent, (a.code for a in REGISTRY))
    wait_until(lambda: redis_counts(redis_client, settings.redis_prefix) == expected, 90,
               f"Redis to equal the batch computation; log:\n{worker.log_tail()}", 0.5)


def _exit_lines(worker) -> list[dict]:
    lines = []
    for text in worker.log_path.read_text(errors="replace").splitlines():
        if '"broker_unreachable"' in text:
            lines.append(json.loads(text))
    return lines


def test_an_outage_shorter_than_the_bound_is_waited_out_and_a_longer_one_ends_the_worker(
        settings, start_worker, redis_client, broker_under_test) -> None:
    messages = _messages()
    halves = [messages[: len(messages) // 2], messages[len(messages) // 2:]]
    broker = broker_under_test.process
    with EventProducer(settings) as producer:
        producer.send_messages((m.key, m.value) for m in halves[0])
    worker = start_worker()
    wait_until(lambda: events_handled(worker) > 0, 60, f"progress before the outage; log:\n{worker.log_tail()}", 0.2)

    # Shorter than the bound: the worker waits, then resumes by itself.
    broker.send_signal(signal.SIGSTOP)
    time.sleep(EXIT_AFTER_S * 0.7)
    broker.send_signal(signal.SIGCONT)
    with EventProducer(settings) as producer:
        producer.send_messages((m.key, m.value) for m in halves[1])
    _wait_exact(redis_client, settings, messages, worker)
    assert worker.process.poll() is None, f"the worker exited after a short outage; log:\n{worker.log_tail()}"
    assert _exit_lines(worker) == []

    # Longer than the bound: one line saying why, exit 72 (not a hang, not a crash loop of tracebacks).
    broker.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        wait_until(lambda: worker.process.poll() is not None, EXIT_AFTER_S + 25,
                   f"the worker to exit during a long outage; log:\n{worker.log_tail()}", 0.5)
        exited_after = time.monotonic() - frozen
    finally:
        broker.send_signal(signal.SIGCONT)
    assert worker.process.returncode == EXIT_BROKER_UNREACHABLE
    [line] = _exit_lines(worker)
    assert line["unreachable_s"] >= EXIT_AFTER_S
    assert exited_after >= EXIT_AFTER_S
    print(f"the long outage ended the worker after {exited_after:.1f} s (bound {EXIT_AFTER_S:.0f} s)")


def test_a_consumer_whose_fetch_failed_stops_without_a_traceback(tmp_path) -> None:
    """What printed a ~100-line traceback from Faust's consumer thread at SIGTERM with the
    broker gone: aiokafka's stop re-raises the cancellation of a failed fetch's retry sleep."""
    broker = start_tansu(tmp_path / "tansu")
    bootstrap = f"127.0.0.1:{broker.port}"
    partition = TopicPartition("quiet-stop", 0)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(partition.topic, b"x").get(timeout=30)
    producer.close()

    async def scenario() -> None:
        consumers = []
        for _ in range(2):
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, retry_backoff_ms=30_000, fetch_max_wait_ms=100)
            await consumer.start()
            consumer.assign([partition])
            await consumer.getmany(timeout_ms=2000)
            consumers.append(consumer)
        broker.kill()
        await asyncio.sleep(3)  # each consumer's next fetch fails: it sleeps its retry backoff
        with pytest.raises(asyncio.CancelledError):  # aiokafka as it is: the stop raises
            await consumers[0].stop()
        await stop_quietly(consumers[1].stop(), consumers[1])  # the worker's consumer thread: quiet

    try:
        asyncio.run(scenario())
    finally:
        broker.stop()
