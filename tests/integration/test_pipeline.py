"""A hand-written stream through a real worker: Redis keys, /metrics and the dead letters."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import orjson
import pytest

from streams.domain.periods import current_periods, today_local
from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.sinks.keys import RedisKeys
from tests.support.events import wire_event
from tests.support.metrics import samples
from tests.support.topics import read_to_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
TODAY = today_local()
PROVINCE = next(a.code for a in REGISTRY.valid_on(TODAY) if a.block == "province")
MINISTRY = next(a.code for a in REGISTRY.valid_on(TODAY) if a.block == "ministry")


def hand_written_stream(now: datetime) -> list[tuple[bytes | None, bytes]]:
    p, m = PROVINCE, MINISTRY
    today = now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    events = [
        # P-1: received one second before local midnight of 30 April, resolved at midnight: May.
        wire_event(p, "p1-r", "P-1", "received", "2025-04-30T16:59:59Z", channel="online", procedure_code="1.001"),
        wire_event(p, "p1-f", "P-1", "fee_paid", "2025-04-30T16:00:00Z", method="online", amount_vnd=50_000),
        wire_event(p, "p1-x", "P-1", "result_returned", "2025-04-30T17:00:00Z", delivery="online"),
        # P-2: fee paid at the counter -> partial online.
        wire_event(p, "p2-r", "P-2", "received", "2025-05-02T02:00:00Z", channel="online", procedure_code="1.002"),
        wire_event(p, "p2-f", "P-2", "fee_paid", "2025-05-02T03:00:00Z", method="in_person", amount_vnd=20_000),
        wire_event(p, "p2-x", "P-2", "result_returned", "2025-05-03T03:00:00Z", delivery="public_postal"),
        # P-3: received recorded as in person, corrected to online -> full online.
        wire_event(p, "p3-r", "P-3", "received", "2025-05-04T02:00:00Z", channel="in_person", procedure_code="1.003"),
        wire_event(p, "p3-x", "P-3", "result_returned", "2025-05-04T09:00:00Z", delivery="online"),
        wire_event(p, "p3-r2", "P-3", "received", "2025-05-04T02:00:00Z", channel="online", procedure_code="1.003", supersedes="p3-r"),
        # P-4: online, rejected -> resolved (rejected), full online.
        wire_event(p, "p4-r", "P-4", "received", "2025-05-05T02:00:00Z", channel="online", procedure_code="1.004"),
        wire_event(p, "p4-j", "P-4", "rejected", "2025-05-06T02:00:00Z"),
        # P-5: recorded by mistake -> counts nowhere.
        wire_event(p, "p5-r", "P-5", "received", "2025-05-07T02:00:00Z", channel="online", procedure_code="1.005"),
        wire_event(p, "p5-x", "P-5", "result_returned", "2025-05-07T09:00:00Z", delivery="online"),
        wire_event(p, "p5-v", "P-5", "voided", "2025-05-08T02:00:00Z"),
        # M-1: postal -> offline.
        wire_event(m, "m1-r", "M-1", "received", "2025-05-02T02:00:00Z", channel="postal", procedure_code="2.001"),
        wire_event(m, "m1-x", "M-1", "result_returned", "2025-05-09T02:00:00Z", delivery="public_postal"),
        wire_event(m, "m-hb", None, "heartbeat", today),
        # Today: one full-online dossier for the province, so the current windows have data.
        wire_event(p, "now-r", "NOW-1", "received", today, channel="online", procedure_code="1.009"),
        wire_event(p, "now-x", "NOW-1", "result_returned", today, delivery="online"),
    ]
    messages = [(e["agency_code"].encode(), orjson.dumps(e)) for e in events]
    duplicate = messages[3]
    bad = [
        (p.encode(), b"{this is not json"),
        (b"ZZ99", orjson.dumps(wire_event("ZZ99", "u1", "U-1", "received", "2025-05-02T02:00:00Z", channel="online", procedure_code="1"))),
        (m.encode(), orjson.dumps(wire_event(p, "k1", "K-1", "received", "2025-05-02T02:00:00Z", channel="online", procedure_code="1"))),
        (p.encode(), orjson.dumps(wire_event(p, "o1", "O-1", "received", "2025-05-02T02:00:00Z", channel="online", procedure_code="1", note="x" * 70_000))),
        (p.encode(), b'{"schema": "emc.dossier-event.v1", "event_id": "\xff"}'),
        (p.encode(), orjson.dumps(wire_event(p, "s1", "S-1", "received", "2025-05-02T02:00:00Z", procedure_code="1"))),
    ]
    return messages[:5] + [duplicate] + bad + messages[5:]


def test_hand_written_stream_reaches_redis_metrics_and_dead_letters(settings, start_worker, redis_client) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    worker = start_worker()
    with EventProducer(settings) as producer:
        for key, value in hand_written_stream(now):
            producer.send(key, value)
        producer.flush()
    keys = RedisKeys(settings.redis_prefix)

    def province_may() -> dict:
        fields = redis_client.hgetall(keys.agency(PROVINCE, "2025-05"))
        return fields if fields.get("resolved") == "4" else {}

    may = wait_until(province_may, 120, f"Redis {keys.agency(PROVINCE, '2025-05')}; worker log:\n{worker.log_tail()}")
    assert {k: may[k] for k in ("received", "received_online", "resolved", "full_online", "partial_online", "completed", "rejected", "payments")} == {
        "received": "3", "received_online": "3", "resolved": "4", "full_online": "3", "partial_online": "1",
        "completed": "3", "rejected": "1", "payments": "1",
    }
    assert may["full_online_rate"] == "0.750000"
    assert may["updated_at"].endswith("Z")

    april = redis_client.hgetall(keys.agency(PROVINCE, "2025-04"))
    assert (april["received"], april["resolved"], april["payments_online"], april["payment_amount_online_vnd"]) == ("1", "0", "1", "50000")
    assert "full_online_rate" not in april  # undefined, not 0
    assert redis_client.hgetall(keys.agency(PROVINCE, "2025-04-30"))["received"] == "1"
    assert redis_client.hgetall(keys.agency(PROVINCE, "2025-05-01"))["full_online"] == "1"

    def national_may() -> dict:
        fields = redis_client.hgetall(keys.block("national", "2025-05"))
        return fields if fields.get("resolved") == "5" else {}

    national = wait_until(national_may, 30, "the national block hash")
    assert (national["full_online"], national["offline"], national["full_online_rate"]) == ("3", "1", "0.600000")
    assert redis_client.hgetall(keys.block("ministry", "2025-05"))["offline"] == "1"
    assert redis_client.zscore(keys.rank("province", "2025-05"), PROVINCE) == pytest.approx(0.75)
    assert redis_client.zscore(keys.rank("ministry", "2025-05"), MINISTRY) == pytest.approx(0.0)

    agencies = redis_client.hgetall(keys.agencies)
    assert json.loads(agencies[MINISTRY])["status"] == "connected"
    assert json.loads(agencies[PROVINCE])["last_event_at"] is not None
    never = next(a.code for a in REGISTRY.valid_on(TODAY) if a.code not in (PROVINCE, MINISTRY))
    assert json.loads(agencies[never])["status"] == "never"

    # /metrics: every agency valid today has its series; today's dossier shows in every window.
    def metrics_ready() -> str:
        text = worker.metrics_text()
        return text if any(s.labels.get("agency") == PROVINCE and s.value == 1.0 for s in samples(text, "emc_full_online_ratio")) else ""

    text = wait_until(metrics_ready, 30, "today's ratio in /metrics")
    dossiers = samples(text, "emc_dossiers")
    assert {s.labels["agency"] for s in dossiers} == {a.code for a in REGISTRY.valid_on(TODAY)}
    for window in ("day", "month", "quarter", "year"):
        value = next(s.value for s in dossiers if s.labels == {"agency": PROVINCE, "block": "province", "mode": "full_online", "window": window})
        assert value == 1.0
    assert all(s.value == 0 for s in dossiers if s.labels["agency"] == never)
    ratios = {(s.labels["agency"], s.labels["window"]) for s in samples(text, "emc_full_online_ratio")}
    assert (never, "day") not in ratios
    events = {(s.labels["type"], s.labels["result"]): s.value for s in samples(text, "emc_events_total")}
    assert sum(v for (t, r), v in events.items() if r == "dead_letter") == 6
    assert events[("received", "duplicate")] == 1
    block = {(s.labels["block"], s.labels["window"]): s.value for s in samples(text, "emc_block_full_online_ratio")}
    assert block[("province", "day")] == 1.0
    assert current_periods(now)["day"] == TODAY.isoformat()

    # The dead-letter topic holds the original bytes, the reason and the source position.
    letters = read_to_end(settings.bootstrap_servers, settings.dead_letter_topic)
    assert len(letters) == 6
    reasons = {dict(m.headers)["emc-reason"].decode() for m in letters}
    assert reasons == {"not_json", "unknown_agency", "key_mismatch", "oversize", "not_utf8", "schema"}
    not_json = next(m for m in letters if dict(m.headers)["emc-reason"] == b"not_json")
    assert not_json.value == b"{this is not json"
    assert dict(not_json.headers)["emc-source-topic"].decode() == settings.input_topic
    assert int(dict(not_json.headers)["emc-source-offset"]) >= 0
