"""Published bulletins on a real worker, broker and Redis (issue 15, items 1-3).

December 2024 for three provinces and a ministry; `emc bulletin publish 2024-12`; then late
events of every kind (a new dossier, a correction, a void, a duplicate). `--as-published`
must print the same bytes before and after, and after Redis lost the version (read back from
the topic); the current report and `emc bulletin diff` show the restatement, computed here
independently from the events.
"""

from __future__ import annotations

import json
from fractions import Fraction

import orjson
import pytest

from streams.domain.bulletin import seal_holds
from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.sinks.keys import RedisKeys
from tests.support.cli import emc
from tests.support.events import wire_event
from tests.support.oracle import batch_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DEC = "2024-12-10T03:00:00Z"


def _dossier(agency: str, d: str, mode: str, at: str = DEC) -> list[dict]:
    channel = "in_person" if mode == "offline" else "online"
    return [wire_event(agency, f"{d}-r", d, "received", at, channel=channel, procedure_code="1.001"),
            wire_event(agency, f"{d}-x", d, "result_returned", at, delivery="online")]


def _send(settings: Settings, events: list[dict]) -> None:
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e["agency_code"].encode(), orjson.dumps(e))
        producer.flush()


def test_publish_as_published_and_diff(settings: Settings, start_worker, redis_client) -> None:  # noqa: ANN001
    first = [
        *_dossier("T01", "a1", "full_online"), *_dossier("T01", "a2", "offline"),       # 50 %
        *_dossier("T04", "b1", "full_online"), *_dossier("T04", "b2", "full_online"),   # 100 %
        *[e for n in range(12) for e in _dossier("T11", f"c{n}", "offline")],          # 0 %: under 10 %
        *_dossier("BCT", "m1", "full_online"),
        *_dossier("T01", "a3", "offline"),  # voided later
    ]
    worker = start_worker()
    _send(settings, first)
    keys = RedisKeys(settings.redis_prefix)
    national = keys.block("national", "2024-12")
    wait_until(lambda: redis_client.hget(national, "resolved") == "18", 120,
               f"December in Redis; worker log:\n{worker.log_tail()}")

    published = emc(settings, "bulletin", "publish", "2024-12", "--note", "bản tin tháng 12")
    assert "published 2024-12 v1" in published.stdout
    doc = orjson.loads(redis_client.get(keys.bulletin("2024-12", 1)))
    assert seal_holds(doc) and doc["note"] == "bản tin tháng 12"
    assert doc["agencies"]["T01"]["resolved"] == 3 and doc["blocks"]["national"]["resolved"] == 18
    assert [e["code"] for e in doc["rankings"]["as-was"]["province"]["ranking"]] == ["T04", "T01", "T11"]
    assert redis_client.hget(keys.agency("T01", "2024-12"), "published_version") == "1"
    assert redis_client.hget(national, "published_version") == "1"
    assert int(redis_client.hget(keys.agency("T01", "2024-12"), "events_after_close")) == 6  # all of it is late now
    assert redis_client.hget(keys.agency("T01", "2024-12"), "last_changed_at")
    for block in (national, keys.block("province", "2024-12")):  # the block hashes carry them too (item 3)
        assert redis_client.hget(block, "events_after_close") == redis_client.hget(block, "events_applied") != "0"
        assert redis_client.hget(block, "last_changed_at") and redis_client.hget(block, "published_version") == "1"

    formats = [("text", "vi"), ("json", "en"), ("html", "vi")]
    before = {f: emc(settings, "report", "--period", "2024-12", "--as-published", "--format", f, "--lang", lang).stdout
              for f, lang in formats}
    assert "Tình trạng số liệu: đã công bố (phiên bản 1)" in before["text"]
    current = emc(settings, "report", "--period", "2024-12").stdout
    assert "Tình trạng số liệu: đã công bố (phiên bản 1)" in current
    # The current report right after publishing is the published one but for its time.
    drop_time = lambda text: [line for line in text.splitlines() if not line.startswith("Thời điểm lập")]  # noqa: E731
    assert drop_time(current) == drop_time(before["text"])

    late = [
        *[e for n in range(3) for e in _dossier("T11", f"c-late{n}", "full_online")],  # T11: 3/15 = 20 %
        wire_event("T01", "a2-r2", "a2", "received", DEC, channel="online", procedure_code="1.001", supersedes="a2-r"),
        wire_event("T01", "a3-v", "a3", "voided", DEC),
        wire_event("T04", "b1-r", "b1", "received", DEC, channel="online", procedure_code="1.001"),  # duplicate
    ]
    _send(settings, late)
    everything = first + late
    wait_until(lambda: redis_client.hget(national, "resolved") == "20"
               and redis_client.hget(keys.agency("T01", "2024-12"), "full_online") == "2", 120,
               f"the late events in Redis; worker log:\n{worker.log_tail()}")
    wait_until(lambda: redis_client.hget(keys.agency("T04", "2024-12"), "events_duplicates") == "1", 30, "the duplicate")

    after = {f: emc(settings, "report", "--period", "2024-12", "--as-published", "--format", f, "--lang", lang).stdout
             for f, lang in formats}
    assert after == before
    assert emc(settings, "report", "--period", "2024-12", "--as-published", "1").stdout == before["text"]
    current = emc(settings, "report", "--period", "2024-12", "--lang", "en").stdout
    assert "Status of the figures: restated after publication (version 1)" in current
    assert json.loads(after["json"])["finality"] == "published" and json.loads(after["json"])["published_version"] == 1

    # The leader's gauges: two agencies restated, the national rate moved from 4/18 to 8/20.
    wait_until(lambda: 'emc_bulletin_restated_agencies{period="2024-12"} 2.0' in worker.metrics_text(), 60,
               "the restated-agencies gauge")
    change = [line for line in worker.metrics_text().splitlines()
              if line.startswith('emc_bulletin_national_ratio_change{period="2024-12"}')]
    assert len(change) == 1 and float(change[0].split()[-1]) == pytest.approx(8 / 20 - 4 / 18)
    diff = json.loads(emc(settings, "bulletin", "diff", "2024-12", "--format", "json").stdout)
    expected = {a: c for (a, p), c in batch_counts(_events(everything)).items() if p == "2024-12"}
    restated = {a["code"]: a for a in diff["agencies"]}
    assert set(restated) == {"T01", "T11"}  # T04's duplicate changed nothing
    assert restated["T01"]["now"]["resolved"] == expected["T01"]["resolved"] == 2
    assert restated["T01"]["now"]["full_online"] == expected["T01"]["full_online"] == 2
    assert restated["T01"]["events_since"]["events_corrections"] == 1
    assert restated["T01"]["events_since"]["events_voids"] == 1
    assert restated["T01"]["events_since"]["events_after_close"] == 2
    assert restated["T11"]["events_since"]["events_applied"] == 6
    assert restated["T11"]["under_threshold_before"] and not restated["T11"]["under_threshold_now"]
    assert restated["T11"]["rate_now"] == pytest.approx(float(Fraction(3, 15)))
    assert restated["T01"]["rank_before"] == 2 and restated["T01"]["rank_now"] == 1  # 2/2 = 100 %, tied with T04
    assert diff["events_since"]["events_duplicates"] == 1
    assert diff["national"]["before"]["resolved"] == 18 and diff["national"]["now"]["resolved"] == 20
    text = emc(settings, "bulletin", "diff", "2024-12").stdout
    assert "agencies restated since publication: 2" in text and "no longer under 10 %" in text

    # Redis lost the version: --as-published reads it from the topic (and writes it back).
    redis_client.delete(keys.bulletin("2024-12", 1))
    assert emc(settings, "report", "--period", "2024-12", "--as-published", "1", "--format", "json", "--lang", "en").stdout \
        == before["json"]
    assert redis_client.exists(keys.bulletin("2024-12", 1))

    second = emc(settings, "bulletin", "publish", "2024-12")
    assert "published 2024-12 v2" in second.stdout
    listing = json.loads(emc(settings, "bulletin", "list", "--format", "json").stdout)
    assert [(b["period"], b["version"]) for b in listing] == [("2024-12", 1), ("2024-12", 2)]
    assert emc(settings, "report", "--period", "2024-12", "--as-published", "1").stdout == before["text"]
    assert "đã công bố (phiên bản 2)" in emc(settings, "report", "--period", "2024-12").stdout
    assert json.loads(emc(settings, "bulletin", "diff", "2024-12", "--format", "json").stdout)["agencies"] == []
    wait_until(lambda: 'emc_bulletin_restated_agencies{period="2024-12"} 0.0' in worker.metrics_text()
               and 'emc_bulletin_published_version{period="2024-12"} 2.0' in worker.metrics_text(), 60, "the gauges of v2")


def _events(raw: list[dict]):  # noqa: ANN202
    from streams.domain.events import event_from_mapping

    return [event_from_mapping(e) for e in raw]
