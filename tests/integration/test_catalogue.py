"""The procedure catalogue through `emc catalogue`, its topic and a real worker: indicators 1
and 2, the uncatalogued procedures and the national portal share in the agency and block
hashes and /metrics; a level change and a void restate them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from streams.domain.catalogue import Catalogue, LevelChange, Procedure
from streams.domain.periods import current_periods, today_local
from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.sinks.keys import RedisKeys
from streams.sinks.redis_snapshots import SnapshotPublisher
from tests.support.cli import emc
from tests.support.events import rfc3339, wire_event
from tests.support.metrics import sample_values
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
TODAY = today_local()
A = [a.code for a in REGISTRY.valid_on(TODAY) if a.block == "province"][2]
B = [a.code for a in REGISTRY.valid_on(TODAY) if a.block == "ministry"][2]


def _event(agency: str, event_id: str, kind: str, at: datetime, dossier: str, **fields: object) -> tuple[bytes, bytes]:
    return agency.encode(), orjson.dumps(wire_event(agency, event_id, dossier, kind, rfc3339(at), **fields))


def test_catalogue_indicators_reach_redis_and_follow_level_changes_and_voids(
        settings, start_worker, redis_client, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    month = current_periods(now)["month"]
    prefix = settings.redis_prefix
    catalogue = tmp_path / "tthc.csv"
    catalogue.write_text(
        "code,name,agency,level,valid_from\n"
        f"1.001,Cấp phiếu lý lịch tư pháp,{A},full_online,2024-01-01\n"
        f"1.002,Đăng ký khai sinh,{A},full_online,2024-01-01\n"
        f"1.003,Cấp giấy phép xây dựng,{A},partial_online,2024-01-01\n"
        f"2.001,Cấp giấy phép lái xe quốc tế,{B},full_online,2024-01-01\n", encoding="utf-8")
    assert "4 procedure record(s) sent" in emc(settings, "catalogue", "import", str(catalogue)).stdout
    worker = start_worker()

    at = now - timedelta(seconds=60)
    events = [
        _event(A, "a1", "received", at, dossier="D1", procedure_code="1.001", channel="online", portal="national"),
        _event(A, "a2", "received", at, dossier="D2", procedure_code="1.001", channel="online", portal="agency"),
        _event(A, "a3", "received", at, dossier="D3", procedure_code="1.002", channel="in_person"),
        _event(A, "a4", "received", at, dossier="D4", procedure_code="1.003", channel="online"),
        _event(A, "a5", "received", at, dossier="D5", procedure_code="9.999", channel="online"),
        _event(B, "b1", "submitted", at, dossier="E1", procedure_code="2.001", channel="online", portal="national"),
        _event(B, "b2", "received", at + timedelta(seconds=5), dossier="E1", procedure_code="2.001", channel="online"),
    ]
    with EventProducer(settings) as producer:
        for key, value in events:
            producer.send(key, value)
        producer.flush()

    def fields(key: str, *names: str) -> dict[str, str | None]:
        return dict(zip(names, redis_client.hmget(key, list(names))))

    names = ("procedures_in_force", "full_online_procedures_in_force", "procedures_with_dossiers",
             "full_online_procedures_with_online_dossiers", "procedures_not_in_catalogue", "received_online",
             "received_national_portal", "full_online_procedures_rate", "full_online_procedures_used_rate",
             "national_portal_rate")
    a_key, national_key = f"{prefix}agency:{A}:{month}", f"{prefix}block:national:{month}"
    expected_a = {"procedures_in_force": "3", "full_online_procedures_in_force": "2", "procedures_with_dossiers": "4",
                  "full_online_procedures_with_online_dossiers": "1", "procedures_not_in_catalogue": "1",
                  "received_online": "4", "received_national_portal": "1", "full_online_procedures_rate": "0.666667",
                  "full_online_procedures_used_rate": "0.250000", "national_portal_rate": "0.250000"}
    wait_until(lambda: fields(a_key, *names) == expected_a, 120,
               f"A's procedure figures; worker log:\n{worker.log_tail()}")
    # The national hash sums A and B: 4 + 1 in force, 3 full online; 5 with dossiers, 2 used online.
    wait_until(lambda: fields(national_key, *names) == {
        "procedures_in_force": "4", "full_online_procedures_in_force": "3", "procedures_with_dossiers": "5",
        "full_online_procedures_with_online_dossiers": "2", "procedures_not_in_catalogue": "1", "received_online": "5",
        "received_national_portal": "2", "full_online_procedures_rate": "0.750000",
        "full_online_procedures_used_rate": "0.400000", "national_portal_rate": "0.400000"}, 30, "national sums")
    # /metrics follows within a tick of Redis.
    used_a = (("agency", A), ("block", "province"), ("indicator", "full_online_procedures_used"), ("window", "month"))
    portal_b = (("agency", B), ("block", "ministry"), ("indicator", "national_portal"), ("window", "month"))
    wait_until(lambda: sample_values(worker.metrics_text(), "emc_indicator_ratio").get(used_a) == 0.25, 30, "A's indicator 2")
    assert sample_values(worker.metrics_text(), "emc_indicator_ratio")[portal_b] == 1.0
    uncatalogued = sample_values(worker.metrics_text(), "emc_procedures_not_in_catalogue")
    assert uncatalogued[(("agency", A), ("block", "province"), ("window", "month"))] == 1.0
    assert uncatalogued[(("agency", B), ("block", "ministry"), ("window", "month"))] == 0.0

    # 1.001 drops to partial_online from today: A's period ends after it, so no procedure of A
    # is full online and used online any more; the worker re-publishes A's rows by itself.
    change = tmp_path / "change.jsonl"
    change.write_text(json.dumps({"code": "1.001", "name": "Cấp phiếu lý lịch tư pháp", "agency": A,
                                  "level": "partial_online", "valid_from": TODAY.isoformat()}, ensure_ascii=False),
                      encoding="utf-8")
    emc(settings, "catalogue", "import", str(change))
    wait_until(lambda: fields(a_key, "full_online_procedures_with_online_dossiers", "full_online_procedures_in_force")
               == {"full_online_procedures_with_online_dossiers": "0", "full_online_procedures_in_force": "1"},
               30, "the level change applied")
    listed = json.loads(emc(settings, "catalogue", "list", "--agency", A, "--format", "json").stdout)
    assert {p["procedure_code"]: p["level_on"] for p in listed} == {
        "1.001": "partial_online", "1.002": "full_online", "1.003": "partial_online"}
    assert next(p for p in listed if p["procedure_code"] == "1.001")["history"] == [
        {"level": "full_online", "valid_from": "2024-01-01"}]

    # Voiding the dossier of the uncatalogued procedure removes it from the set; a bad import
    # changes nothing.
    with EventProducer(settings) as producer:
        producer.send(*_event(A, "a5v", "voided", now, dossier="D5"))
        producer.flush()
    wait_until(lambda: fields(a_key, "procedures_with_dossiers", "procedures_not_in_catalogue")
               == {"procedures_with_dossiers": "3", "procedures_not_in_catalogue": "0"}, 30, "the void applied")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"code,name,agency,level,valid_from\n1.004,Tên,{A},toàn trình,2025-01-01\n", encoding="utf-8")
    result = emc(settings, "catalogue", "import", str(bad), check=False)
    assert result.returncode == 2 and "line 2: level: 'toàn trình'" in result.stderr
    assert len(json.loads(emc(settings, "catalogue", "list", "--format", "json").stdout)) == 4


def test_an_agency_with_a_catalogue_and_no_dossiers_has_indicator_1(settings, start_worker, redis_client,
                                                                     tmp_path: Path) -> None:
    """Indicator 1 needs the catalogue only: C received nothing, yet its hash, the block and
    national sums and /metrics carry it for the current month (and quarter, year); withdrawn
    from today, C's hash goes and the sums follow, its history kept; erased, nothing is left."""
    c = [a.code for a in REGISTRY.valid_on(TODAY) if a.block == "province"][4]
    month = current_periods(datetime.now(UTC))["month"]
    prefix = settings.redis_prefix
    catalogue = tmp_path / "tthc.csv"
    catalogue.write_text("code,name,agency,level,valid_from\n"
                         f"3.001,Đăng ký kết hôn,{c},full_online,2024-01-01\n"
                         f"3.002,Cấp giấy phép xây dựng,{c},partial_online,2024-01-01\n", encoding="utf-8")
    emc(settings, "catalogue", "import", str(catalogue))
    worker = start_worker()
    c_key, national_key = f"{prefix}agency:{c}:{month}", f"{prefix}block:national:{month}"
    names = ("procedures_in_force", "full_online_procedures_in_force", "full_online_procedures_rate", "resolved")
    wait_until(lambda: dict(zip(names, redis_client.hmget(c_key, list(names)))) == {
        "procedures_in_force": "2", "full_online_procedures_in_force": "1", "full_online_procedures_rate": "0.500000",
        "resolved": "0"}, 120, f"C's indicator 1; worker log:\n{worker.log_tail()}")
    assert redis_client.hget(national_key, "full_online_procedures_rate") == "0.500000"
    assert redis_client.hget(f"{prefix}block:province:{month}", "procedures_in_force") == "2"
    assert "full_online_rate" not in redis_client.hgetall(c_key)  # nothing resolved: no indicator 3
    year = current_periods(datetime.now(UTC))["year"]
    assert redis_client.hget(f"{prefix}agency:{c}:{year}", "procedures_in_force") == "2"
    one = (("agency", c), ("block", "province"), ("indicator", "full_online_procedures"), ("window", "month"))
    wait_until(lambda: sample_values(worker.metrics_text(), "emc_indicator_ratio").get(one) == 0.5, 30, "C's metric")

    # Withdrawn from today: not in force at the month's end, so the hash goes; the history stays
    # (a past period keeps the procedures), unless erased.
    for code in ("3.001", "3.002"):
        assert f"withdrawn from {TODAY.isoformat()}" in emc(settings, "catalogue", "withdraw", c, code).stdout
    wait_until(lambda: not redis_client.exists(c_key), 30, "C's hash gone with its catalogue")
    assert redis_client.hget(national_key, "procedures_in_force") in (None, "0")
    listed = {p["procedure_code"]: p for p in json.loads(emc(settings, "catalogue", "list", "--agency", c, "--format", "json").stdout)}
    assert {code: (p["level"], p["level_on"], p["history"]) for code, p in listed.items()} == {
        "3.001": ("withdrawn", None, [{"level": "full_online", "valid_from": "2024-01-01"}]),
        "3.002": ("withdrawn", None, [{"level": "partial_online", "valid_from": "2024-01-01"}])}
    emc(settings, "catalogue", "withdraw", c, "3.002", "--erase")
    assert [p["procedure_code"] for p in json.loads(emc(settings, "catalogue", "list", "--agency", c, "--format", "json").stdout)] \
        == ["3.001"]


def test_every_worker_writes_indicator_1_without_dossiers_for_the_periods_any_worker_has(settings, redis_client) -> None:
    """Two workers' snapshot publishers on one Redis: X's owner has X's rows of March 2024,
    Y's owner holds no row of that period at all. Y still gets its catalogue-only hashes for
    the month, quarter and year (through the shared `periods-with-figures` set), not for the
    day, and the block sums count both; publishing them again changes nothing."""
    x, y = [a.code for a in REGISTRY.valid_on(date(2024, 3, 31)) if a.block == "province" and a.is_valid_on(TODAY)][:2]
    catalogue = Catalogue.of([Procedure(y, code, "Đăng ký kết hôn", (LevelChange(date(2024, 1, 1), level),))
                              for code, level in (("3.001", "full_online"), ("3.002", "partial_online"), ("3.003", "not_online"))])
    x_counts = {"received": 3, "resolved": 2, "full_online": 1}
    keys = RedisKeys(settings.redis_prefix)
    now = current_periods(datetime.now(UTC))
    current = [now["day"], now["month"], now["quarter"], now["year"]]

    def read_counts(agency: str, period: str) -> dict[str, int]:  # what the tables hold: X's rows only
        return {**(x_counts if agency == x else {}), **catalogue.figures(agency, period, {})}

    async def run() -> None:
        owners = [SnapshotPublisher(replace(settings, worker_name=f"w{n}"), REGISTRY, aioredis.Redis.from_url(settings.redis_url))
                  for n in range(2)]
        x_owner, y_owner = owners
        try:
            x_owner.mark_dirty([(x, "2024-03-15"), (x, "2024-03"), (x, "2024-Q1"), (x, "2024")])
            assert await x_owner.flush(read_counts, {}, None)
            for _ in range(2):  # a tick learns the periods, the next writes them
                y_owner.mark_catalogue_only_rows(catalogue, [y], current)
                assert await y_owner.flush(read_counts, {}, None)
            before = {p: redis_client.hgetall(keys.block("province", p)) for p in ("2024-03", "2024-Q1", "2024")}
            y_owner.forget_catalogue_only_rows()  # a rebalance: marked and written again, idempotent
            y_owner.mark_catalogue_only_rows(catalogue, [y], current)
            assert await y_owner.flush(read_counts, {}, None)
            assert {p: redis_client.hgetall(keys.block("province", p)) for p in before} == before
        finally:
            for owner in owners:
                await owner.client.aclose()

    asyncio.run(run())
    assert redis_client.smembers(keys.periods_with_figures) == {"2024-03", "2024-Q1", "2024", *current[1:]}  # no day
    for period in ("2024-03", "2024-Q1", "2024", now["month"]):
        assert redis_client.hmget(keys.agency(y, period), ["procedures_in_force", "full_online_procedures_in_force"]) == ["3", "1"], period
    assert not redis_client.exists(keys.agency(y, "2024-03-15")) and not redis_client.exists(keys.agency(y, now["day"]))
    province = redis_client.hgetall(keys.block("province", "2024-03"))
    assert (province["resolved"], province["procedures_in_force"], province["full_online_procedures_rate"]) == ("2", "3", "0.333333")
