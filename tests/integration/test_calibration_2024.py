"""The 2024 profile at reduced scale through the real pipeline (Tansu broker, `emc worker`,
redis-server): Redis ends up with exactly what the batch computation says, and that is the
2024 EMC bulletin: the top-10 provinces and ministries in the published order, each published
rate within half a point, the under-10 % lists, the national and block rates."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from streams.domain.registry import Registry
from streams.domain.snapshot import counts_from_hash
from streams.kafka.producer import EventProducer
from streams.security.keyring_file import signing_keyring
from streams.simulation.profile import ProfileConfig, ProfileSimulation
from streams.simulation.traffic import declare_maintenance
from streams.sinks.keys import RedisKeys
from tests.support.cli import emc
from tests.support.oracle import accepted_events, batch_counts, nonzero
from tests.support.published_figures import PUBLISHED_2024
from tests.support.signing import with_signatures
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
# Small enough for the pipeline on a busy 2-core machine (~30k messages): few events per
# dossier (--lean), a heartbeat a month, 150 resolved dossiers for a published rate (its
# rounding stays within 0.34 point).
CONFIG = ProfileConfig(profile="2024", scale=0.0001, seed=2024, min_resolved_published=150, min_resolved=20,
                       lean=True, heartbeat_every=timedelta(days=30), duplicate_share=0.02, correction_share=0.02,
                       void_share=0.01, late_share=0.02, bad_share=0.002)


@pytest.fixture
def settings(settings, tmp_path):  # every event signed, and signatures enforced
    return with_signatures(settings, tmp_path)


def test_2024_profile_through_the_pipeline_gives_the_2024_bulletin(settings, start_worker, redis_client) -> None:
    simulation = ProfileSimulation(CONFIG, REGISTRY)
    messages = list(simulation.messages())
    valid = accepted_events(messages, (agency.code for agency in REGISTRY))
    expected = {key: row for key, row in batch_counts(valid).items() if len(key[1]) == 4}  # year rows
    assert len(messages) < 40_000 and len(expected) > 60

    worker = start_worker()
    declare_maintenance(settings, simulation)  # what `emc simulate --broker` and `emc local` do
    with EventProducer(settings, signing_keyring(settings)) as producer:
        for message in messages:
            producer.send(message.key, message.value)
        producer.flush()

    keys = RedisKeys(settings.redis_prefix)

    def drained() -> bool:
        pipe = redis_client.pipeline(transaction=False)
        for agency, period in expected:
            pipe.hgetall(keys.agency(agency, period))
        found = [nonzero(counts_from_hash(fields)) for fields in pipe.execute()]
        return found == list(expected.values())

    wait_until(drained, 170, f"Redis to equal the batch computation; worker log:\n{worker.log_tail()}", interval_s=2)

    def rank(block: str) -> list[tuple[str, float]]:
        return [(code, 100 * score) for code, score in redis_client.zrevrange(keys.rank(block, "2024"), 0, -1, withscores=True)]

    def rate(key: str) -> float:
        return 100 * float(redis_client.hget(key, "full_online_rate"))

    provinces, ministries = rank("province"), rank("ministry")
    assert [code for code, _ in provinces[:10]] == PUBLISHED_2024["province_top10"]
    assert [code for code, _ in ministries[:10]] == PUBLISHED_2024["ministry_top10"]
    for code, published in {**PUBLISHED_2024["province_rates"], **PUBLISHED_2024["ministry_rates"]}.items():
        assert abs(rate(keys.agency(code, "2024")) - published) < 0.5, code
    assert {code for code, r in provinces if r < 10} == PUBLISHED_2024["under10"]["province"]
    assert {code for code, r in ministries if r < 10} == PUBLISHED_2024["under10"]["ministry"]
    for block in ("national", "ministry", "province"):
        assert abs(rate(keys.block(block, "2024")) - PUBLISHED_2024[block]) < 0.5, block
    # The silent units have no figures at all.
    ranked = {code for code, _ in provinces + ministries}
    assert len({a.code for a in REGISTRY.valid_on(simulation.days[180][0])} - ranked) == PUBLISHED_2024["silent"]
    # ...and Thừa Thiên Huế was disconnected for a system upgrade: the leader's list for 2024
    # names it, with the declared window, and no other unit.
    def maintained() -> dict[str, list[dict]]:
        raw = redis_client.get(keys.list("maintenance-in-period", "province", "2024"))
        return {unit["code"]: unit["windows"] for unit in orjson.loads(raw)} if raw else {}

    wait_until(lambda: "T46" in maintained(), 30, "Huế in the 2024 maintenance list")
    [hue] = [u for u in orjson.loads(redis_client.get(keys.list("maintenance-in-period", "province", "2024"))) if u["code"] == "T46"]
    assert hue["name"] == "Thừa Thiên Huế"  # as the bulletin names it: the city of Huế only from 2025
    assert [(w["from"], w["until"]) for w in maintained()["T46"]] == [("2024-12-02T00:00:00+07:00", "2024-12-23T00:00:00+07:00")]
    assert list(maintained()) == ["T46"]
    assert redis_client.get(keys.list("maintenance-in-period", "ministry", "2024")) == "[]"

    # Issue 15: publish December 2024, then late events for it. `--as-published` still prints
    # the published bulletin, byte for byte; the current report and the diff show the change.
    published = emc(settings, "bulletin", "publish", "2024-12", "--note", "bản tin tháng 12/2024")
    assert "published 2024-12 v1" in published.stdout
    as_published = emc(settings, "report", "--period", "2024-12", "--as-published").stdout
    december = nonzero(counts_from_hash(redis_client.hgetall(keys.agency("T01", "2024-12"))))
    late_at = "2024-12-20T03:00:00Z"
    late = [orjson.dumps(e) for n in range(5) for e in (
        {"schema": "emc.dossier-event.v1", "event_id": f"late-{n}-r", "agency_code": "T01", "dossier_id": f"late-{n}",
         "type": "received", "occurred_at": late_at, "channel": "online", "procedure_code": "1.001"},
        {"schema": "emc.dossier-event.v1", "event_id": f"late-{n}-x", "agency_code": "T01", "dossier_id": f"late-{n}",
         "type": "result_returned", "occurred_at": late_at, "delivery": "online"})]
    with EventProducer(settings, signing_keyring(settings)) as producer:
        for value in late:
            producer.send(b"T01", value)
        producer.flush()
    wait_until(lambda: int(redis_client.hget(keys.agency("T01", "2024-12"), "resolved")) == december["resolved"] + 5, 60,
               "the late December dossiers of T01")
    assert emc(settings, "report", "--period", "2024-12", "--as-published").stdout == as_published
    current = emc(settings, "report", "--period", "2024-12").stdout
    assert "đã điều chỉnh sau khi công bố (phiên bản 1)" in current and current != as_published
    diff = orjson.loads(emc(settings, "bulletin", "diff", "2024-12", "--format", "json").stdout)
    [t01] = diff["agencies"]
    assert t01["code"] == "T01"
    assert (t01["before"]["resolved"], t01["now"]["resolved"]) == (december["resolved"], december["resolved"] + 5)
    assert (t01["before"]["full_online"], t01["now"]["full_online"]) == (december.get("full_online", 0), december.get("full_online", 0) + 5)
    assert t01["events_since"]["events_applied"] == 10 and t01["events_since"]["events_after_close"] == 10
    assert diff["national"]["now"]["resolved"] == diff["national"]["before"]["resolved"] + 5
