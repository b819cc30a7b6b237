"""Rankings, `emc report` and `emc explain` on a real worker, broker and Redis (issue 5).

One worker for the module. The events: ties (equal rates, the tie broken by resolved then
code), an agency with received but nothing resolved (no figure, not 0 %), a province merged
away on 2025-07-01 with events before the merger and a late one after it, absorbed ministries,
a corrected (superseded) event, and a heartbeat. Every list in Redis and every report is
compared with the rankings computed independently from the events (tests/support/oracle.py batch
counts + the pure ranking functions), not with hard-coded figures.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
import redis

from streams.domain.events import event_from_mapping
from streams.domain.periods import today_local
from streams.domain.rankings import block_rankings
from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.stack import free_port
from streams.settings import Settings, load_settings
from streams.sinks.keys import RedisKeys
from tests.integration.conftest import WorkerProcess
from tests.support.cli import emc
from tests.support.events import wire_event
from tests.support.oracle import batch_contract_counts as batch_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
TODAY = today_local()


def _dossier(agency: str, n: int, mode: str, at: str, outcome: str = "completed") -> list[dict]:
    """One dossier received and resolved at `at` in the given mode."""
    d = f"{agency}-{at[:10]}-{n}"
    channel = "in_person" if mode == "offline" else "online"
    events = [wire_event(agency, f"{d}-r", d, "received", at, channel=channel, procedure_code="1.001")]
    if mode == "partial_online":
        events.append(wire_event(agency, f"{d}-f", d, "fee_paid", at, method="in_person", amount_vnd=10_000))
    if outcome == "completed":
        events.append(wire_event(agency, f"{d}-x", d, "result_returned", at, delivery="online"))
    else:
        events.append(wire_event(agency, f"{d}-j", d, "rejected", at))
    return events


def _many(agency: str, at: str, **modes: int) -> list[dict]:
    out, n = [], 0
    for mode, count in modes.items():
        for _ in range(count):
            n += 1
            out += _dossier(agency, n, mode, at)
    return out


JUNE = "2025-06-10T03:00:00Z"
AUGUST = "2025-08-12T03:00:00Z"
FEBRUARY = "2025-02-10T03:00:00Z"


def first_events(now: datetime) -> list[dict]:
    corrected = "T37-2025-06-10-fix"
    events = [
        *_many("T04", JUNE, full_online=3),                       # 100 %, 3 resolved
        *_many("T01", JUNE, full_online=2, offline=2),            # 50 %, 4 resolved
        *_many("T35", JUNE, full_online=1, offline=1),            # 50 %, tie with T36 on resolved: code decides
        *_many("T36", JUNE, full_online=1, partial_online=1),     # 50 %
        *_many("T11", JUNE, offline=3),                           # 0 %: under 10 %
        # T37: received in person, corrected to online -> 1/1 = 100 %, tie with T04 (fewer resolved).
        wire_event("T37", "fix-r1", corrected, "received", JUNE, channel="in_person", procedure_code="1.002"),
        wire_event("T37", "fix-x", corrected, "result_returned", JUNE, delivery="online"),
        wire_event("T37", "fix-r2", corrected, "received", JUNE, channel="online", procedure_code="1.002", supersedes="fix-r1"),
        # T12: received, nothing resolved: no figure.
        wire_event("T12", "t12-r", "T12-1", "received", JUNE, channel="online", procedure_code="1.003"),
        # After the merger: the merged province, and a late event of Hà Nam (T35) itself.
        *_many("T37-2025", AUGUST, full_online=1, offline=1),
        *_many("T35", AUGUST, full_online=1),
        # Ministries: BHXH and BKHDT were absorbed by BTC on 2025-03-01.
        *_many("BHXH", FEBRUARY, full_online=1),
        *_many("BTC", FEBRUARY, offline=1),
        *_many("BCT", JUNE, full_online=1, offline=1),
        *_many("BTC", JUNE, full_online=2),
        *[e for e in _dossier("BYT", 1, "offline", JUNE, outcome="rejected")],
        wire_event("T01", "hb-now", None, "heartbeat", now.isoformat(timespec="seconds").replace("+00:00", "Z")),
    ]
    return events


def late_events() -> list[dict]:
    # T11 gets two fully-online dossiers in June: 2/5 = 40 %, no longer under 10 %.
    return _many("T11", "2025-06-20T03:00:00Z", full_online=2)


@pytest.fixture(scope="module")
def module_settings(broker, redis_process, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    run = f"rk{os.getpid()}"
    tmp = tmp_path_factory.mktemp("rankings")
    return load_settings({
        "broker": f"kafka://127.0.0.1:{broker.port}",
        "redis_url": f"redis://127.0.0.1:{redis_process.port}/0",
        "metrics_port": free_port(),
        "data_dir": str(tmp / "worker"),
        "input_topic": f"emc.dossier-events.{run}",
        "dead_letter_topic": f"emc.dossier-events.dlq.{run}",
        "batch_topic": f"emc.dossier-batches.{run}",
        "control_topic": f"emc.agency-control.{run}",  # ignored by a Settings without it
        "app_id": f"emc-{run}",
        "redis_prefix": f"emc:{run}:",
        "partitions": 4,
        "snapshot_interval_s": 0.5,
        "log_level": "info",
    }, environ={})


class Fed:
    def __init__(self, settings: Settings, worker: WorkerProcess, client: redis.Redis, events: list[dict], tmp: Path) -> None:
        self.settings, self.worker, self.client, self.events, self.tmp = settings, worker, client, events, tmp

    def expected_counts(self, period: str) -> dict[str, dict[str, int]]:
        counts = batch_counts(event_from_mapping(e) for e in self.events)
        return {agency: row for (agency, p), row in counts.items() if p == period}

    def ranking(self, block: str, period: str, view: str = "as-was") -> dict:
        raw = self.client.get(RedisKeys(self.settings.redis_prefix).ranking(block, period, view))
        return json.loads(raw) if raw else {}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return emc(self.settings, *args, check=False)


def _statuses(events: list[dict]) -> dict[str, str]:
    """Independent: a heartbeat now -> connected; only events long ago (2025) -> silent; nothing -> never."""
    out = {a.code: "never" for a in REGISTRY}
    for e in events:
        if out[e["agency_code"]] != "connected":
            out[e["agency_code"]] = "connected" if e["type"] == "heartbeat" else "silent"
    return out


def _publish(settings: Settings, events: list[dict]) -> None:
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e["agency_code"].encode(), orjson.dumps(e))
        producer.flush()


@pytest.fixture(scope="module")
def fed(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    tmp = tmp_path_factory.mktemp("rankings-out")
    worker = WorkerProcess(module_settings, tmp / "worker.log").start()
    client = redis.Redis.from_url(module_settings.redis_url, decode_responses=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    events = first_events(now)
    _publish(module_settings, events)
    state = Fed(module_settings, worker, client, events, tmp)
    try:
        wait_until(lambda: [e["code"] for e in state.ranking("province", "2025-06").get("ranking", [])] == ["T04", "T37", "T01", "T35", "T36", "T11"]
                   and state.ranking("ministry", "2025-02"), 150,
                   f"the June rankings in Redis; worker log:\n{worker.log_tail()}")
        yield state
    finally:
        worker.discard()
        client.close()


def _entries(doc_entries: list[dict]) -> list[tuple]:
    return [(e["rank"], e["code"], e["full_online"], e["resolved"]) for e in doc_entries]


def _oracle_entries(ranked) -> list[tuple]:
    return [(e.rank, e.unit.code, e.unit.full_online, e.unit.resolved) for e in ranked]


PERIODS = ("2025-06", "2025-08", "2025-02", "2025-Q2", "2025")


def _check_lists(fed: Fed) -> bool:
    """Every ranking and list in Redis equals the one computed from the events (AssertionError if not)."""
    statuses = _statuses(fed.events)
    for period in PERIODS:
        for view in ("as-was", "restated"):
            expected = block_rankings(REGISTRY, period, fed.expected_counts(period), statuses, TODAY, view)
            for block, ranking in expected.items():
                doc = fed.ranking(block, period, view)
                where = f"{view} {block} {period}"
                assert doc.get("view") == view, where
                assert _entries(doc["ranking"]) == _oracle_entries(ranking.ranking), where
                assert [u["code"] for u in doc["no_figure"]] == [u.code for u in ranking.no_figure], where
                if view == "as-was":
                    keys = RedisKeys(fed.settings.redis_prefix)
                    lists = {kind: json.loads(fed.client.get(keys.list(kind, block, period)))
                             for kind in ("top10", "under10", "silent", "never", "maintenance")}
                    assert _entries(lists["top10"]) == _oracle_entries(ranking.top(10)), where
                    assert _entries(lists["under10"]) == _oracle_entries(ranking.under_threshold), where
                    for status in ("silent", "never", "maintenance"):
                        assert [u["code"] for u in lists[status]] == [u.code for u in ranking.with_status(status)], where
                    # The contract's rank zset holds exactly the ranked units.
                    zset = fed.client.zrange(keys.rank(block, period), 0, -1)
                    assert sorted(zset) == sorted(e.unit.code for e in ranking.ranking), where
    return True


def test_redis_lists_match_the_rankings_computed_from_the_events(fed: Fed) -> None:
    # The events reach Redis over several ticks: wait until every list is the expected one.
    wait_until(lambda: _check_lists(fed), 60, f"all lists as computed from the events; log:\n{fed.worker.log_tail()}")
    _check_lists(fed)

    june = fed.ranking("province", "2025-06")
    ranks = {e["code"]: e["rank"] for e in june["ranking"]}
    # Ties: T04 (3/3) and T37 (1/1) share rank 1; T01, T35, T36 (50 %) share rank 3; T11 is 6th.
    assert ranks == {"T04": 1, "T37": 1, "T01": 3, "T35": 3, "T36": 3, "T11": 6}
    assert "T12" in [u["code"] for u in june["no_figure"]]  # received, nothing resolved: no figure
    assert all(u["rate"] is None for u in june["no_figure"])
    # The merger boundary: June as-was has T35/T36/T37 apart; restated sums them into T37-2025.
    restated = {e["code"]: e for e in fed.ranking("province", "2025-06", "restated")["ranking"]}
    assert "T35" not in restated and (restated["T37-2025"]["full_online"], restated["T37-2025"]["resolved"]) == (3, 5)
    year = {e["code"]: e for e in fed.ranking("province", "2025", "restated")["ranking"]}
    assert (year["T37-2025"]["full_online"], year["T37-2025"]["resolved"]) == (3 + 2, 5 + 3)
    assert year["T37-2025"]["merged_from"] == ["T35", "T36", "T37", "T37-2025"]
    btc = {e["code"]: e for e in fed.ranking("ministry", "2025-02", "restated")["ranking"]}["BTC"]
    assert (btc["full_online"], btc["resolved"]) == (1, 2)


def test_a_late_event_rebuilds_an_old_periods_lists(fed: Fed) -> None:
    _publish(fed.settings, late_events())
    fed.events = fed.events + late_events()
    keys = RedisKeys(fed.settings.redis_prefix)

    def t11_out_of_under10() -> bool:
        under = json.loads(fed.client.get(keys.list("under10", "province", "2025-06")) or "[]")
        return not under and fed.ranking("province", "2025-Q2") and \
            {e["code"]: e["resolved"] for e in fed.ranking("province", "2025-Q2")["ranking"]}.get("T11") == 5

    wait_until(t11_out_of_under10, 60, f"the June lists rebuilt after a late event; log:\n{fed.worker.log_tail()}")
    wait_until(lambda: _check_lists(fed), 30, "every list restated after the late event")
    wait_until(lambda: fed.client.scard(keys.rankings_rebuilding) == 0, 10, "no period left half-rebuilt")


def _percent(full: int, resolved: int, lang: str) -> str:
    """Independent formatting of a rate as the bulletins print it."""
    value = (Decimal(full) * 100 / Decimal(resolved)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    text = f"{value:.2f} %"
    return text.replace(".", ",") if lang == "vi" else text


def test_report_in_every_format_and_language(fed: Fed) -> None:
    counts = fed.expected_counts("2025")
    national_full = sum(r.get("full_online", 0) for r in counts.values())
    national_resolved = sum(r.get("resolved", 0) for r in counts.values())
    for view in ("as-was", "restated"):
        result = fed.cli("report", "--period", "2025", "--format", "json", "--view", view)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["view"] == view and doc["has_data"] is True
        assert (doc["national"]["full_online"], doc["national"]["resolved"]) == (national_full, national_resolved)
        assert doc["national"]["target"] == 0.8 and doc["blocks"]["province"]["target"] == 0.7
        expected = block_rankings(REGISTRY, "2025", counts, {}, TODAY, view)
        for block in ("province", "ministry"):
            assert _entries(doc["blocks"][block]["ranking"]) == _oracle_entries(expected[block].ranking)
            assert isinstance(doc["blocks"][block]["ranking"][0]["rate"], float)

    vi = fed.cli("report", "--period", "2025-06", "--block", "province")
    assert vi.returncode == 0, vi.stderr
    assert "as-was" in vi.stdout and "Hà Nam" in vi.stdout and "Khối địa phương" in vi.stdout
    june = fed.expected_counts("2025-06")
    assert _percent(june["T11"]["full_online"], june["T11"]["resolved"], "vi") in vi.stdout
    en = fed.cli("report", "--period", "2025-06", "--lang", "en", "--view", "restated")
    assert en.returncode == 0, en.stderr
    assert "restated" in en.stdout and "Ninh Binh" in en.stdout
    merged = sum(june[c].get("full_online", 0) for c in ("T35", "T36", "T37")), sum(june[c]["resolved"] for c in ("T35", "T36", "T37"))
    assert _percent(*merged, "en") in en.stdout

    empty = fed.cli("report", "--period", "2019-01", "--format", "json")
    assert empty.returncode == 0 and json.loads(empty.stdout)["has_data"] is False
    assert "Không có số liệu cho kỳ 2019-01" in fed.cli("report", "--period", "2019-01").stdout
    bad = fed.cli("report", "--period", "2025-13")
    assert bad.returncode == 2 and bad.stderr.startswith("emc: error:") and len(bad.stderr.strip().splitlines()) == 1


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_ranking = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self._in_ranking = ("class", "ranking") in attrs
        elif tag == "tr" and self._in_ranking:
            self.rows.append([])
        elif tag == "td" and self._in_ranking:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._in_ranking = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_report_renders_in_headless_chromium(fed: Fed) -> None:
    import matplotlib.image

    page = fed.tmp / "report.html"
    result = fed.cli("report", "--period", "2025-06", "--format", "html", "--out", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text("utf-8")
    assert "<svg" in text and "<script" not in text and "<link" not in text and " src=" not in text
    chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={fed.tmp / 'chromium'}"]
    shot = fed.tmp / "report.png"
    subprocess.run([*chromium, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.05  # not blank
    dom = subprocess.run([*chromium, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    parser = _Rows()
    parser.feed(dom)
    expected = block_rankings(REGISTRY, "2025-06", fed.expected_counts("2025-06"), {}, TODAY, "as-was")
    rendered = [(int(r[0]), r[1], r[2]) for r in parser.rows if r]
    assert rendered == [(e.rank, e.unit.code, e.unit.name) for block in ("province", "ministry") for e in expected[block].ranking]


def test_explain_answers_with_the_dossiers_behind_the_figure(fed: Fed) -> None:
    result = fed.cli("explain", "T37", "2025-06", "--format", "json", "--sample", "2")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    expected = fed.expected_counts("2025-06")["T37"]
    assert {k: v for k, v in doc["counts"].items() if v} == expected
    assert doc["matches_redis"] is True
    full = doc["categories"]["full_online"]
    assert full["dossiers"] == expected["full_online"]
    events = {e["event_id"]: e for e in full["sample"][0]["events"]}
    assert events["fix-r1"]["state"] == "superseded" and events["fix-r1"]["superseded_by"] == ["fix-r2"]
    assert "channel" in events["fix-r2"]["roles"] and "resolution" in events["fix-x"]["roles"]

    for agency, period in (("T01", "2025-06"), ("BYT", "2025-06"), ("T35", "2025")):
        result = fed.cli("explain", agency, period, "--format", "json", "--sample", "1")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        expected = fed.expected_counts(period)[agency]
        assert {k: v for k, v in doc["counts"].items() if v} == expected, agency
        assert doc["matches_redis"] is True
        for category in ("full_online", "partial_online", "offline", "unclassified", "rejected", "withdrawn"):
            assert doc["categories"][category]["dossiers"] == expected.get(category, 0)
            assert len(doc["categories"][category]["sample"]) <= 1
    text = fed.cli("explain", "T11", "2025-06")
    assert text.returncode == 0 and "match" in text.stdout and "offline: " in text.stdout
