"""Signed events through a real worker (EMC_AUTH enforce and audit): the forged, unknown-key,
expired-key, tampered and unsigned events are dead-lettered as `unauthenticated` and never
counted in enforce, counted in audit, and metered in both."""

from __future__ import annotations

import time
from dataclasses import replace

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.periods import today_local
from streams.domain.registry import Registry
from streams.domain.signatures import AgencyKey, Keyring, signature_headers
from streams.kafka.producer import EventProducer
from streams.security.keyring_file import new_key, save_keyring
from tests.support.events import wire_event
from tests.support.topics import read_to_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
TODAY = today_local()
PROVINCE = next(a.code for a in REGISTRY.valid_on(TODAY) if a.block == "province")
MINISTRY = next(a.code for a in REGISTRY.valid_on(TODAY) if a.block == "ministry")
HOUR_US = 3600 * 1_000_000
NOW_US = int(time.time()) * 1_000_000
PROVINCE_KEY = new_key(PROVINCE, valid_from_us=NOW_US - HOUR_US)
MINISTRY_KEY = new_key(MINISTRY, valid_from_us=NOW_US - HOUR_US)
EXPIRED_KEY = AgencyKey(f"{PROVINCE}-expired", PROVINCE, "e" * 64, NOW_US - 240 * HOUR_US, NOW_US - 24 * HOUR_US)
NOT_IN_KEYRING = AgencyKey(f"{PROVINCE}-stranger", PROVINCE, "f" * 64, NOW_US - HOUR_US)


@pytest.fixture(params=["enforce", "audit"])
def settings(request, settings, tmp_path):  # the conftest's settings, with signatures checked
    path = tmp_path / "keyring.json"
    save_keyring(Keyring([PROVINCE_KEY, MINISTRY_KEY, EXPIRED_KEY]), path)
    return replace(settings, auth=request.param, keyring=str(path))


def received(agency: str, event_id: str) -> bytes:
    return orjson.dumps(wire_event(agency, event_id, event_id, "received", "2025-05-02T02:00:00Z",
                                   channel="online", procedure_code="1.001"))


def _samples(text: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def test_only_events_signed_by_their_own_agency_count(settings, start_worker, redis_client) -> None:
    worker = start_worker()
    good = [received(PROVINCE, "good-r"),
            orjson.dumps(wire_event(PROVINCE, "good-x", "good-r", "result_returned", "2025-05-03T02:00:00Z", delivery="online"))]
    with EventProducer(settings, Keyring([PROVINCE_KEY, MINISTRY_KEY])) as producer:
        for value in good:
            producer.send(PROVINCE.encode(), value)
        producer.flush()
    assert producer.signer is not None and producer.signer.unsigned == 0

    forged, unknown, expired, tampered, unsigned = (
        received(MINISTRY, "forged"), received(PROVINCE, "unknown"), received(PROVINCE, "expired"),
        received(PROVINCE, "tampered"), received(PROVINCE, "unsigned"),
    )
    bad = {
        "wrong_agency": (MINISTRY, forged, signature_headers(PROVINCE_KEY, forged)),  # A's key naming B
        "unknown_key": (PROVINCE, unknown, signature_headers(NOT_IN_KEYRING, unknown)),
        "key_not_valid": (PROVINCE, expired, signature_headers(EXPIRED_KEY, expired)),
        "bad_signature": (PROVINCE, tampered.replace(b'"online"', b'"postal"'), signature_headers(PROVINCE_KEY, tampered)),
        "missing_signature": (PROVINCE, unsigned, []),
    }
    raw = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for agency, value, headers in bad.values():
        raw.send(settings.input_topic, key=agency.encode(), value=value, headers=headers)
    raw.flush()
    raw.close()

    def metered() -> dict:
        text = worker.metrics_text()
        found = {(s.labels["agency"], s.labels["reason"]): s.value for s in _samples(text, "emc_unauthenticated_events_total")}
        return found if len(found) == len(bad) else {}

    meter = wait_until(metered, 120, f"emc_unauthenticated_events_total; worker log:\n{worker.log_tail()}")
    assert meter == {(agency, reason): 1.0 for reason, (agency, _, _) in bad.items()}

    prefix = settings.redis_prefix
    if settings.auth == "enforce":
        def dead_letters() -> list:
            records = read_to_end(settings.bootstrap_servers, settings.dead_letter_topic)
            return records[:len(bad)] if len(records) >= len(bad) else []

        letters = wait_until(dead_letters, 60, f"{len(bad)} dead letters")
        details = {dict(m.headers)["emc-detail"].decode().split(":")[0]: m for m in letters}
        assert {dict(m.headers)["emc-reason"] for m in letters} == {b"unauthenticated"}
        assert set(details) == set(bad)
        assert all(details[reason].value == value for reason, (_, value, _) in bad.items())
        province = wait_until(lambda: redis_client.hgetall(f"{prefix}agency:{PROVINCE}:2025-05").get("resolved") == "1"
                              and redis_client.hgetall(f"{prefix}agency:{PROVINCE}:2025-05"), 60, "the signed dossier")
        assert (province["received"], province["full_online"]) == ("1", "1")  # the four bad ones never counted
        assert redis_client.hgetall(f"{prefix}agency:{MINISTRY}:2025-05") == {}  # the forged one neither
    else:
        province = wait_until(lambda: redis_client.hgetall(f"{prefix}agency:{PROVINCE}:2025-05").get("received") == "5"
                              and redis_client.hgetall(f"{prefix}agency:{PROVINCE}:2025-05"), 60, "all five events counted")
        assert province["resolved"] == "1"
        ministry = wait_until(lambda: redis_client.hgetall(f"{prefix}agency:{MINISTRY}:2025-05"), 30, "the forged event counted")
        assert ministry["received"] == "1"
