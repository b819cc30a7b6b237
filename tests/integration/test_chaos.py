"""The chaos test (issue 18 item 8): one stream through worker SIGKILLs, a broker restart that
keeps its log, a Redis that comes back empty, and poison messages; then every count of every
agency and period is compared with the batch computation, and every bad message is on the
dead-letter topic. benchmarks/chaos.py runs the same faults at random for as long as asked."""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from streams.domain.registry import Registry
from streams.local.stack import start_redis
from streams.simulation.simulator import SimulationConfig, simulate
from tests.integration.conftest import WorkerProcess, events_handled, redis_counts, wait_until
from tests.support.oracle import batch_counts_of_messages
from tests.support.poison import poison
from tests.support.topics import read_to_end

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()


@pytest.fixture
def broker_under_test(restartable_broker):
    return restartable_broker


def test_kills_broker_restart_redis_wipe_and_poison_leave_every_count_exact(
        settings, restartable_broker, tmp_path: Path) -> None:
    rng = random.Random(8)
    own_redis = start_redis(tmp_path / "redis")
    settings = replace(settings, redis_url=f"redis://127.0.0.1:{own_redis.port}/0")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    agencies = [a.code for a in REGISTRY.valid_on(date(2025, 1, 1))][:12]
    config = SimulationConfig(agencies=agencies, dossiers=1500, seed=88, duplicate_share=0.08, correction_share=0.06,
                              void_share=0.03, late_share=0.15, bad_share=0.0,
                              start=datetime(2024, 12, 1, tzinfo=timezone.utc), end=datetime(2025, 2, 1, tzinfo=timezone.utc))
    valid = [(m.key, m.value, []) for m in simulate(config)]
    bad = [poison(n, agencies[n % len(agencies)], rng) for n in range(1300)]
    stream = valid + bad
    rng.shuffle(stream)
    expected = batch_counts_of_messages(valid, agencies)
    parts = [stream[i::5] for i in range(5)]  # five interleaved parts, each a slice of the whole

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20, retries=20)

    def send(part: list) -> None:
        futures = [producer.send(settings.input_topic, key=k, value=v, headers=h) for k, v, h in part]
        producer.flush()
        assert all(f.succeeded() for f in futures)

    def progress_then(what: str) -> None:
        before = events_handled(worker)
        wait_until(lambda: events_handled(worker) > before, 120, f"progress before {what}; log:\n{worker.log_tail()}", 0.05)

    faults: list[str] = []
    try:
        send(parts[0])
        progress_then("a SIGKILL")
        worker.kill()
        worker.start()
        faults.append("worker SIGKILL")

        send(parts[1])
        progress_then("the broker restart")
        restartable_broker.kill()
        time.sleep(10)
        restartable_broker.start_again()
        faults.append("broker killed, back after 10 s with its log")

        send(parts[2])
        own_redis.kill()
        for path in (tmp_path / "redis").glob("appendonly*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        own_redis.start_again()
        faults.append("redis killed, back empty")

        send(parts[3])
        progress_then("a second SIGKILL")
        worker.kill()
        worker.start()
        faults.append("worker SIGKILL")
        send(parts[4])
        producer.close()

        wait_until(lambda: redis_counts(client, settings.redis_prefix) == expected, 300,
                   f"Redis to equal the batch computation after {faults}; log:\n{worker.log_tail()}", 2.0)
    finally:
        found = redis_counts(client, settings.redis_prefix)
        wrong = {k: (found.get(k), expected.get(k)) for k in set(found) | set(expected) if found.get(k) != expected.get(k)}
        worker.stop()
        own_redis.stop()
    assert not wrong, f"{len(wrong)} agency-periods differ, e.g. {list(wrong.items())[:3]}"

    # Every bad message is on the dead-letter topic (a replay after a SIGKILL may add copies:
    # the dead-letter topic is at least once, so count distinct source offsets).
    def dead_letter_sources() -> set:
        # Read again until the count is reached: the last dead letters may still be on their way.
        records = read_to_end(settings.bootstrap_servers, settings.dead_letter_topic)
        found = {(dict(r.headers)["emc-source-partition"], dict(r.headers)["emc-source-offset"]) for r in records}
        return found if len(found) >= len(bad) else set()

    sources = wait_until(dead_letter_sources, 60, f"{len(bad)} distinct dead letters")
    assert len(sources) == len(bad)
    print(f"chaos: {faults}; {len(expected)} agency-periods exact; {len(sources)} dead letters for {len(bad)} bad messages")
