"""The black-box exactness test: SIGKILL the worker mid-stream, again and again, then run
two workers, and compare every count of every agency and period in Redis with the batch
computation over the whole event list."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.events import parse_event
from streams.domain.periods import today_local
from streams.domain.registry import Registry
from streams.domain.snapshot import counts_from_hash
from streams.errors import InvalidEvent
from streams.kafka.producer import EventProducer
from streams.security.keyring_file import signing_keyring
from streams.simulation.simulator import SimMessage, SimulationConfig, simulate
from streams.sinks.keys import RedisKeys
from tests.integration.conftest import events_handled, redis_counts
from tests.support.oracle import batch_counts, nonzero
from tests.support.signing import with_signatures
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()


@pytest.fixture
def settings(settings, tmp_path):  # every event signed, and signatures enforced
    return with_signatures(settings, tmp_path)


def test_sigkill_mid_stream_and_two_workers_keep_every_count_exact(settings, start_worker, redis_client) -> None:
    agencies = [a.code for a in REGISTRY.valid_on(datetime(2025, 1, 1).date())][:12]
    config = SimulationConfig(
        agencies=agencies, dossiers=1500, seed=2024,  # ~7,200 events, 574 agency-periods (3,000: 13,800 and 579)
        start=datetime(2024, 12, 10, tzinfo=timezone.utc), end=datetime(2025, 1, 20, tzinfo=timezone.utc),
        duplicate_share=0.08, correction_share=0.06, void_share=0.03, late_share=0.15, bad_share=0.01,
        midnight_share=0.1,
    )
    messages: list[SimMessage] = list(simulate(config))
    # Mix offsets further: late events are already out of time order; also swap neighbours.
    rng = random.Random(5)
    for i in range(0, len(messages) - 1, 7):
        if rng.random() < 0.5:
            messages[i], messages[i + 1] = messages[i + 1], messages[i]
    valid = []
    for message in messages:
        try:
            valid.append(parse_event(message.value, message.key))
        except InvalidEvent:
            pass
    expected = batch_counts(e for e in valid if e.agency_code in set(agencies))
    assert len(expected) > 300  # a stream wide enough to mean something

    # Consecutive parts, in input order.
    parts = 5
    size = len(messages) // parts + 1
    chunks = [messages[i : i + size] for i in range(0, len(messages), size)]

    with EventProducer(settings, signing_keyring(settings)) as producer:
        worker = start_worker()
        for number, chunk in enumerate(chunks[:3]):
            before = events_handled(worker)
            producer.send_messages((m.key, m.value) for m in chunk)
            # Kill as soon as this part is being processed, i.e. mid-stream.
            wait_until(lambda: events_handled(worker) > before, 120, f"progress on part {number}; log:\n{worker.log_tail()}", 0.05)
            worker.kill()
            worker.start()
        # Two workers share the rest; the first one is killed once more while they do.
        second = start_worker(1)
        producer.send_messages((m.key, m.value) for m in chunks[3])
        wait_until(lambda: events_handled(worker) + events_handled(second) > 0, 120, "progress with two workers", 0.05)
        worker.kill()
        worker.start()
        for chunk in chunks[4:]:
            producer.send_messages((m.key, m.value) for m in chunk)

    def exact() -> bool:
        return redis_counts(redis_client, settings.redis_prefix) == expected

    try:
        wait_until(exact, 300, "Redis to equal the batch computation", 2.0)
    finally:
        found = redis_counts(redis_client, settings.redis_prefix)
        wrong = {k: (found.get(k), expected.get(k)) for k in set(found) | set(expected) if found.get(k) != expected.get(k)}
        assert not wrong, f"{len(wrong)} agency-periods differ, e.g. {list(wrong.items())[:3]}\n{worker.log_tail()}"

    # The national block equals the sum over agencies, field by field, for every month.
    for month in ("2024-12", "2025-01"):
        wanted: dict[str, int] = {}
        for (_, period), counts in expected.items():
            if period == month:
                for field, value in counts.items():
                    wanted[field] = wanted.get(field, 0) + value
        key = RedisKeys(settings.redis_prefix).block("national", month)
        wait_until(lambda: nonzero(counts_from_hash(redis_client.hgetall(key))) == wanted, 30, f"national {month} = {wanted}")

    # With two workers, each agency's series come from exactly one of them.
    def owners() -> list[set[str]]:
        sets = []
        for w in (worker, second):
            text = w.metrics_text()
            sets.append({s.labels["agency"] for f in text_string_to_metric_families(text) for s in f.samples if s.name == "emc_dossiers"})
        return sets

    valid_today = {a.code for a in REGISTRY.valid_on(today_local())}
    def split_between_both() -> list[set[str]] | None:
        sets = owners()
        return sets if sets[0] | sets[1] == valid_today else None

    first_owned, second_owned = wait_until(split_between_both, 60, "both workers exporting")
    assert first_owned and second_owned
    assert not first_owned & second_owned
