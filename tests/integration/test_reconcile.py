"""Reconciliation on a real worker, broker and Redis (issue 15, items 4 and 5): the whole loop.

T01's December 2024: publish a bulletin; reconcile an export that disagrees in every way (a
dossier EMC never saw, one EMC counts that the export lacks, a wrong channel, a wrong
resolution); send the corrections the README prescribes; `emc bulletin diff` reports the
restatement; reconcile again: zero differences. `emc reconcile` finds the owner through Redis;
a worker asked for a partition it does not own redirects to the owner named there.
"""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from streams.kafka.producer import EventProducer
from streams.settings import Settings
from streams.sinks.keys import RedisKeys
from streams.worker.ingest import state_partition_for
from tests.support.cli import emc
from tests.support.events import wire_event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

AT = "2024-12-10T03:00:00Z"
RESOLVED = "2024-12-11T04:00:00Z"


def _dossier(d: str, channel: str, *, in_person_fee: bool = False) -> list[dict]:
    events = [wire_event("T01", f"{d}-r", d, "received", AT, channel=channel, procedure_code="1.001")]
    if in_person_fee:
        events.append(wire_event("T01", f"{d}-f", d, "fee_paid", AT, method="in_person", amount_vnd=50000))
    events.append(wire_event("T01", f"{d}-x", d, "result_returned", RESOLVED, delivery="online"))
    return events


def _send(settings: Settings, events: list[dict]) -> None:
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e["agency_code"].encode(), orjson.dumps(e))
        producer.flush()


def _export(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["dossier_id", "procedure", "received_at", "channel", "resolved_at", "outcome", "classification"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _row(d: str, channel: str, outcome: str = "completed", classification: str = "full_online") -> dict:
    return {"dossier_id": d, "procedure": "1.001", "received_at": "2024-12-10T10:00:00+07:00", "channel": channel,
            "resolved_at": "2024-12-11T11:00:00+07:00", "outcome": outcome, "classification": classification}


def test_reconcile_corrections_close_the_loop(settings: Settings, start_worker, redis_client, tmp_path: Path) -> None:  # noqa: ANN001
    worker = start_worker()
    _send(settings, [*_dossier("d1", "online"), *_dossier("d2", "in_person"), *_dossier("d3", "online", in_person_fee=True),
                     *_dossier("d4", "online"), *_dossier("d6", "online")])
    keys = RedisKeys(settings.redis_prefix)
    t01 = keys.agency("T01", "2024-12")
    wait_until(lambda: redis_client.hget(t01, "resolved") == "5", 120, f"December in Redis; worker log:\n{worker.log_tail()}")
    assert "published 2024-12 v1" in emc(settings, "bulletin", "publish", "2024-12").stdout
    wait_until(lambda: redis_client.hlen(keys.workers) == settings.partitions, 30, "the owner entries")
    base = f"http://127.0.0.1:{settings.metrics_port}/v1/dossiers"
    with urllib.request.urlopen(f"{base}?agency=T01&period=2024-11", timeout=10) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        assert [orjson.loads(line) for line in response] == [{"end": True, "dossiers": 0, "read": 5}]
    for query in ("agency=T01", "agency=NOPE&period=2024-12", "agency=T01&period=2024-13"):
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(f"{base}?{query}", timeout=10)
        assert bad.value.code == 400

    # The agency's records: d2 was online, d4 was rejected, d5 exists, d6 does not (a test dossier).
    export = _export(tmp_path / "t01-2024-12.csv", [
        _row("d1", "online"), _row("d2", "online"), _row("d3", "online", classification="partial_online"),
        _row("d4", "online", outcome="rejected"), _row("d5", "online"),
        {**_row("d7", "online"), "resolved_at": "2024-11-28T09:00:00+07:00"},  # another period: not compared
    ])
    first = emc(settings, "reconcile", "T01", "2024-12", "--file", str(export), "--format", "json", check=False)
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    found = {(d["kind"], d["dossier_id"]): d for d in report["dossiers"]}
    assert set(found) == {("missing_in_emc", "d5"), ("missing_in_export", "d6"), ("different", "d2"), ("different", "d4")}
    assert found[("different", "d2")]["fields"] == {"channel": {"emc": "in_person", "export": "online"},
                                                    "classification": {"emc": "offline", "export": "full_online"}}
    assert found[("different", "d2")]["rule"] == "offline: channel in_person (from d2-r)"
    assert found[("different", "d4")]["fields"] == {"outcome": {"emc": "completed", "export": "rejected"}}
    assert found[("missing_in_emc", "d5")]["emc"] is None
    assert [e["event_id"] for e in found[("missing_in_export", "d6")]["emc"]["events"]] == ["d6-r", "d6-x"]
    assert report["counts"]["emc"]["resolved"] == 5 and report["counts"]["export"]["resolved"] == 5
    assert report["counts"]["emc"]["offline"] == 1 and report["counts"]["export"]["offline"] == 0
    assert report["export_rows_outside_period"] == 1
    text = emc(settings, "reconcile", "T01", "2024-12", "--file", str(export), check=False).stdout
    assert "missing_in_emc: 1 dossier(s)" in text and "EMC has no event of this dossier" in text
    assert "d2-r  live  channel=in_person <- channel, received" in text
    rows = list(csv.DictReader(emc(settings, "reconcile", "T01", "2024-12", "--file", str(export), "--format", "csv",
                                   check=False).stdout.splitlines()))
    assert {(r["kind"], r["dossier_id"], r["field"]) for r in rows} == {
        ("missing_in_emc", "d5", ""), ("missing_in_export", "d6", ""), ("different", "d2", "channel"),
        ("different", "d2", "classification"), ("different", "d4", "outcome")}

    # The corrections of README "Reconciliation": each names the event it replaces.
    _send(settings, [
        *_dossier("d5", "online"),                                                     # the missing dossier, sent late
        wire_event("T01", "d2-r2", "d2", "received", AT, channel="online", procedure_code="1.001", supersedes="d2-r"),
        wire_event("T01", "d4-j", "d4", "rejected", RESOLVED, supersedes="d4-x"),      # the resolution it really had
        wire_event("T01", "d6-v", "d6", "voided", RESOLVED),                           # a dossier that never was
    ])
    wait_until(lambda: redis_client.hget(t01, "rejected") == "1" and redis_client.hget(t01, "full_online") == "4"
               and redis_client.hget(t01, "resolved") == "5", 120, f"the corrections in Redis; worker log:\n{worker.log_tail()}")

    diff = json.loads(emc(settings, "bulletin", "diff", "2024-12", "--format", "json").stdout)
    restated = {a["code"]: a for a in diff["agencies"]}
    assert set(restated) == {"T01"}
    assert (restated["T01"]["before"]["full_online"], restated["T01"]["now"]["full_online"]) == (3, 4)
    assert restated["T01"]["events_since"]["events_corrections"] == 2 and restated["T01"]["events_since"]["events_voids"] == 1

    again = emc(settings, "reconcile", "T01", "2024-12", "--file", str(export), check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "agree: no discrepancy" in again.stdout


def test_a_worker_that_does_not_own_the_partition_redirects_to_its_owner(settings: Settings, redis_client) -> None:  # noqa: ANN001
    """The route of a worker that serves no partition, in this process, with the real Redis."""
    from prometheus_client import CollectorRegistry

    from streams.domain.registry import Registry
    from streams.sinks.metrics_server import metrics_basic_auth
    from streams.worker.dossier_api import ROUTE, DossierEndpoint
    from streams.worker.health import Health, serve_http

    keys = RedisKeys(settings.redis_prefix)
    guarded = replace(settings, metrics_username="emc", metrics_password="secret")
    endpoint = DossierEndpoint(guarded, Registry.load(), lambda partition: None)
    server = serve_http("127.0.0.1", settings.metrics_port, CollectorRegistry(), Health(stall_after_s=60),
                        basic_auth=metrics_basic_auth(guarded), routes={ROUTE: endpoint.handle})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            return None

    opener = urllib.request.build_opener(NoRedirect)
    url = f"http://127.0.0.1:{settings.metrics_port}{ROUTE}?agency=T01&period=2024-12"

    def status(authorization: str | None) -> tuple[int, dict]:
        request = urllib.request.Request(url)
        if authorization:
            request.add_header("Authorization", authorization)
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(request, timeout=10)
        return answer.value.code, dict(answer.value.headers)

    try:
        auth = metrics_basic_auth(guarded).decode()
        assert status(None)[0] == 401
        code, headers = status(auth)
        assert code == 503 and headers["Retry-After"] == "2"  # nobody owns it yet
        redis_client.hset(keys.workers, str(state_partition_for("T01", settings.partitions)), "http://owner.example:9108")
        code, headers = status(auth)
        assert code == 307 and headers["Location"] == "http://owner.example:9108/v1/dossiers?agency=T01&period=2024-12"
    finally:
        server.shutdown()
        server.server_close()
