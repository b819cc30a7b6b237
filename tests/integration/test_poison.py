"""Poison at volume (issue 18 item 4): 10,000 bad messages of many kinds mixed into a valid
stream, among them an empty value, a null value, null keys, a 2 MiB value and headers that are
not UTF-8. Every bad one is on the dead-letter topic with its reason, counted once acked, and
every count of the valid ones is exact."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timezone

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.registry import Registry
from streams.simulation.simulator import SimulationConfig, simulate
from tests.integration.conftest import redis_counts, wait_until
from tests.support.oracle import batch_counts_of_messages
from tests.support.poison import BAD_HEADERS, TWO_MIB, poison
from tests.support.topics import read_to_end

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
def _dead_letters_counted(worker) -> float:
    text = worker.metrics_text()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "emc_events_total" and s.labels.get("result") == "dead_letter")


def test_ten_thousand_poison_messages_are_dead_lettered_exactly_and_counts_stay_exact(settings, start_worker, redis_client) -> None:
    rng = random.Random(4)
    agencies = [a.code for a in REGISTRY.valid_on(date(2025, 1, 1))][:10]
    config = SimulationConfig(agencies=agencies, dossiers=1000, seed=44, bad_share=0.0,
                              start=datetime(2025, 1, 1, tzinfo=timezone.utc), end=datetime(2025, 2, 1, tzinfo=timezone.utc))
    valid = [(m.key, m.value, BAD_HEADERS if rng.random() < 0.05 else []) for m in simulate(config)]
    bad = [poison(n, agencies[n % len(agencies)], rng) for n in range(9_999)]
    huge = orjson.dumps({"schema": "emc.dossier-event.v1", "event_id": "huge", "agency_code": agencies[0],
                         "type": "heartbeat", "occurred_at": "2025-01-05T03:00:00Z", "note": "y" * TWO_MIB})
    bad.append((agencies[0].encode(), huge, BAD_HEADERS))
    stream = valid + bad
    rng.shuffle(stream)
    expected = batch_counts_of_messages(valid, agencies)

    worker = start_worker()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20,
                             max_request_size=4 * TWO_MIB)
    futures = [producer.send(settings.input_topic, key=k, value=v, headers=h) for k, v, h in stream]
    producer.flush()
    assert all(f.succeeded() for f in futures)
    producer.close()

    wait_until(lambda: redis_counts(redis_client, settings.redis_prefix) == expected, 240,
               f"counts exact; log:\n{worker.log_tail()}", 2.0)
    wait_until(lambda: _dead_letters_counted(worker) == len(bad), 60, "every dead letter counted")

    letters = read_to_end(settings.bootstrap_servers, settings.dead_letter_topic, fetch_max_bytes=16 * TWO_MIB,
                          max_partition_fetch_bytes=4 * TWO_MIB)
    assert len(letters) == len(bad)
    reasons = Counter(dict(r.headers)["emc-reason"].decode() for r in letters)
    assert set(reasons) >= {"not_json", "not_utf8", "schema", "unknown_agency", "key_mismatch", "oversize"}, reasons
    sent_values = Counter(v or b"" for _, v, _ in bad)
    assert Counter(r.value or b"" for r in letters) == sent_values  # the original bytes, 2 MiB one included
    assert any(len(r.value) == len(huge) for r in letters)
    for record in letters:
        headers = dict(record.headers)
        assert {"emc-source-topic", "emc-source-partition", "emc-source-offset"} <= headers.keys()
    print(f"dead letters: {len(letters)} on the topic for {len(bad)} sent; reasons {dict(reasons)}")
