"""A broker killed and started again keeps its log (S3 storage in moto_server), and the
workers resume by themselves with every count exact."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from kafka import KafkaProducer

from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.simulation.simulator import SimulationConfig, simulate
from tests.integration.conftest import events_handled as _events_handled
from tests.integration.conftest import redis_counts, wait_until
from tests.support.oracle import batch_counts_of_messages
from tests.support.topics import read_to_end

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()


def test_a_killed_broker_started_again_serves_its_whole_log(restartable_broker) -> None:
    servers = f"127.0.0.1:{restartable_broker.port}"
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    for n in range(500):
        producer.send("restart-log", key=b"k", value=str(n).encode())
    producer.flush()
    producer.close()

    restartable_broker.kill()
    restartable_broker.start_again()

    values = [int(record.value) for record in read_to_end(servers, "restart-log", partitions=[0])]
    assert values == list(range(500))


@pytest.fixture
def broker_under_test(restartable_broker):
    return restartable_broker


def _stream(seed: int, dossiers: int) -> tuple[list, dict]:
    """Simulated messages (with duplicates, corrections, late and bad events) and the batch
    computation of their counts."""
    agencies = [a.code for a in REGISTRY.valid_on(datetime(2025, 1, 1).date())][:8]
    config = SimulationConfig(
        agencies=agencies, dossiers=dossiers, seed=seed,
        start=datetime(2024, 12, 20, tzinfo=timezone.utc), end=datetime(2025, 1, 10, tzinfo=timezone.utc),
        duplicate_share=0.08, correction_share=0.06, void_share=0.03, late_share=0.15, bad_share=0.01,
    )
    messages = list(simulate(config))
    return messages, batch_counts_of_messages(messages, (a.code for a in REGISTRY))


def test_workers_resume_by_themselves_after_the_broker_is_gone_for_30_s(
        settings, start_worker, redis_client, restartable_broker) -> None:
    messages, expected = _stream(seed=18, dossiers=1500)
    half = len(messages) // 2
    with EventProducer(settings) as producer:
        worker = start_worker()
        producer.send_messages((m.key, m.value) for m in messages[:half])
    wait_until(lambda: _events_handled(worker) > 0, 120, f"progress before the outage; log:\n{worker.log_tail()}", 0.2)

    restartable_broker.kill()
    time.sleep(30)
    restartable_broker.start_again()
    back = time.monotonic()

    with EventProducer(settings) as producer:
        producer.send_messages((m.key, m.value) for m in messages[half:])
    restarts = 0

    def exact() -> bool:
        # A worker that judged itself stalled exits non-zero for its supervisor (issue 18
        # item 1): act as the supervisor, and count it.
        nonlocal restarts
        if worker.process is not None and worker.process.poll() not in (None, 0):
            restarts += 1
            worker.start()
        return redis_counts(redis_client, settings.redis_prefix) == expected

    try:
        wait_until(exact, 300, f"Redis to equal the batch computation; log:\n{worker.log_tail()}", 2.0)
    finally:
        found = redis_counts(redis_client, settings.redis_prefix)
        wrong = {k: (found.get(k), expected.get(k)) for k in set(found) | set(expected) if found.get(k) != expected.get(k)}
        assert not wrong, f"{len(wrong)} agency-periods differ, e.g. {list(wrong.items())[:3]}"
    print(f"counts exact {time.monotonic() - back:.1f} s after the broker was back; supervisor restarts: {restarts}")
    assert restarts <= 1
