"""Reconciliation without a worker: the export reader, the comparison, the summaries the
dossier endpoint sends (a property test against the domain's counts), its key-range read on a
real RocksDB, and the advertised URL setting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict

from streams.domain.dossier import classify, dossier_counts, live_events
from streams.domain.events import DossierEvent
from streams.domain.instants import us_to_rfc3339
from streams.errors import ConfigError
from streams.reports.explain import dossier_record, dossier_summary, rule_text
from streams.reports.reconcile import (
    read_export,
    reconcile,
    reconciliation_json,
    render_reconciliation_csv,
    render_reconciliation_text,
    with_details,
)
from streams.settings import load_settings
from streams.worker.dossier_api import agency_rows, answer_lines, parse_query, rows_by_id
from streams.worker.state import AppliedEvent, encode_dossier_row, row_key
from tests.unit.domain.test_dossier_properties import dossier_history

DEC_10 = 1_733_799_600_000_000  # 2024-12-10T03:00:00Z
HOUR = 3_600_000_000


def _event(event_id: str, dossier: str, kind: str, at_us: int, **fields: object) -> DossierEvent:
    return DossierEvent(event_id=event_id, agency_code="T01", type=kind, occurred_at_us=at_us, dossier_id=dossier, **fields)


def _row(*events: DossierEvent) -> bytes:
    return encode_dossier_row([AppliedEvent(0, n, e) for n, e in enumerate(events)])


def _dossier(d: str, channel: str = "online", *, resolved_us: int = DEC_10 + 30 * HOUR, kind: str = "result_returned") -> bytes:
    resolution = {"delivery": "online"} if kind == "result_returned" else {}
    return _row(_event(f"{d}-r", d, "received", DEC_10, channel=channel, procedure_code="1.001"),
                _event(f"{d}-x", d, kind, resolved_us, **resolution))


def _write(tmp_path: Path, text: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "dossier_id,procedure,received_at,channel,resolved_at,outcome,classification\n"


def test_the_export_is_read_as_csv_or_json_lines(tmp_path: Path) -> None:
    csv_rows = read_export(_write(tmp_path, HEADER + "a,1.001,2024-12-10T10:00:00+07:00,online,2024-12-11T09:00:00Z,completed,full_online\n"
                                  "b,,,,,,\n"))
    assert [(r.dossier_id, r.channel, r.outcome, r.classification, r.line) for r in csv_rows] == [
        ("a", "online", "completed", "full_online", 2), ("b", None, None, None, 3)]
    assert csv_rows[0].received_at_us == DEC_10 and csv_rows[0].resolved_in("2024-12") and not csv_rows[1].resolved_in("2024-12")
    jsonl = read_export(_write(tmp_path, '{"dossier_id": "a", "procedure_code": "1.001", "resolved_at": "2024-12-11T09:00:00Z", '
                                         '"outcome": "rejected"}\n\n', "export.jsonl"))
    assert [(r.dossier_id, r.procedure, r.outcome) for r in jsonl] == [("a", "1.001", "rejected")]
    # Columns in any order, `procedure_code`, no classification column, a short row, a blank line.
    reordered = read_export(_write(tmp_path, "outcome, resolved_at ,dossier_id,procedure_code\n"
                                             "completed,2024-12-11T09:00:00Z,a,1.001\n\nrejected,2024-12-12T09:00:00Z,b\n"))
    assert [(r.dossier_id, r.procedure, r.outcome, r.classification, r.line) for r in reordered] == [
        ("a", "1.001", "completed", None, 2), ("b", None, "rejected", None, 4)]


@pytest.mark.parametrize(("text", "message"), [
    ("id,channel\na,online\n", "no dossier_id column"),
    (HEADER + "a,,2024-12-10 10:00,,,,\n", "export.csv:2: received_at '2024-12-10 10:00' is not an RFC 3339 time"),
    (HEADER + "a,,2024-12-10T10:00:00,,,,\n", "is not an RFC 3339 time with its offset"),
    (HEADER + "a,,,fax,,,\n", "export.csv:2: channel 'fax' is not one of online, in_person, postal"),
    (HEADER + "a,,,,2024-12-11T09:00:00Z,,\n", "resolved_at and outcome go together"),
    (HEADER + "a,,,,,,unclassified\n", "classification 'unclassified' is not one of"),
    (HEADER + "a,,,,,,\nb,,,,,,\na,,,,,,\n", "export.csv:4: dossier a already on line 2"),
    (HEADER + "a,,,,,,,extra\n", "more values than header columns"),
    ('{"dossier_id": "a"}\n[1]\n', "export.csv:2: expected a JSON object"),
    ('{"dossier_id": 7}\n', "dossier_id must be a string"),
])
def test_a_bad_export_is_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_export(_write(tmp_path, text))


def test_reconcile_finds_each_kind_and_counts_both_ways(tmp_path: Path) -> None:
    rows = {
        "same": _dossier("same"),
        "channel": _dossier("channel", "in_person"),
        "outcome": _dossier("outcome"),
        "only-emc": _dossier("only-emc"),
        "elsewhere": _dossier("elsewhere", resolved_us=DEC_10 + 40 * 24 * HOUR),  # resolved in January
    }
    export = read_export(_write(tmp_path, HEADER
                                + "same,1.001,2024-12-10T10:00:00+07:00,online,2024-12-11T16:00:00+07:00,completed,full_online\n"
                                + "channel,1.001,,online,2024-12-11T16:00:00+07:00,completed,\n"
                                + "outcome,1.001,,online,2024-12-11T16:00:00+07:00,rejected,\n"
                                + "elsewhere,1.001,,online,2024-12-12T16:00:00+07:00,completed,\n"
                                + "never,1.001,,online,2024-12-12T16:00:00+07:00,completed,\n"
                                + "later,1.001,,online,2025-01-12T16:00:00+07:00,completed,\n"))
    summaries = {d: s for d, row in rows.items() if (s := dossier_summary(d, row, "2024-12")) is not None}
    assert set(summaries) == set(rows)  # "elsewhere" was received in December: listed, not resolved there
    assert not summaries["elsewhere"]["resolved"]
    draft = reconcile("T01", "2024-12", export, summaries)
    details = {d.dossier_id: dossier_record(d.dossier_id, rows[d.dossier_id], "2024-12", always=True)
               for d in draft.discrepancies if d.dossier_id in rows}
    result = with_details(draft, details)
    found = {(d.kind, d.dossier_id): d for d in result.discrepancies}
    assert set(found) == {("missing_in_emc", "elsewhere"), ("missing_in_emc", "never"), ("missing_in_export", "only-emc"),
                          ("different", "channel"), ("different", "outcome")}
    assert found[("missing_in_emc", "never")].note == "EMC has no event of this dossier"
    assert found[("missing_in_emc", "elsewhere")].note == "EMC counts it resolved at 2025-01-19T03:00:00Z, in another period"
    assert found[("different", "channel")].fields == {"channel": ("in_person", "online")}
    assert found[("different", "outcome")].fields == {"outcome": ("completed", "rejected")}
    assert result.emc_counts == {"resolved": 4, "completed": 4, "rejected": 0, "full_online": 3, "partial_online": 0,
                                 "offline": 1, "unclassified": 0}
    assert result.export_counts == {"resolved": 5, "completed": 4, "rejected": 1, "full_online": 1, "partial_online": 0,
                                    "offline": 0, "unclassified": 0}
    assert result.export_outside_period == 1 and not result.agrees
    doc = reconciliation_json(result)
    assert doc["discrepancies"] == {"missing_in_emc": 2, "missing_in_export": 1, "different": 2}
    channel = next(d for d in doc["dossiers"] if d["dossier_id"] == "channel")
    assert channel["rule"] == "offline: channel in_person (from channel-r)"
    text = render_reconciliation_text(result, "Hà Nội")
    assert "channel-r  live  channel=in_person <- channel, received" in text and "missing_in_export: 1 dossier(s)" in text
    assert render_reconciliation_csv(result).splitlines()[1:3] == [
        "T01,2024-12,missing_in_emc,elsewhere,,,,\"full_online: channel online (from elsewhere-r), no in-person step\","
        "\"EMC counts it resolved at 2025-01-19T03:00:00Z, in another period\"",
        "T01,2024-12,missing_in_emc,never,,,,,EMC has no event of this dossier"]


def test_an_export_that_agrees_agrees(tmp_path: Path) -> None:
    export = read_export(_write(tmp_path, HEADER + "a,1.001,2024-12-10T10:00:00+07:00,online,2024-12-11T16:00:00+07:00,completed,full_online\n"))
    summaries = {"a": dossier_summary("a", _dossier("a"), "2024-12")}
    result = reconcile("T01", "2024-12", export, summaries)
    assert result.agrees and "agree: no discrepancy" in render_reconciliation_text(result, "Hà Nội")


@settings(max_examples=300)
@given(history=dossier_history(), period=st.sampled_from(["2025-01", "2025-02", "2025", "2024-12"]))
def test_the_summary_says_resolved_exactly_when_the_dossier_counts_resolved_in_the_period(
        history: list[DossierEvent], period: str) -> None:
    row = _row(*history)
    counts = dossier_counts(live_events(history))
    summary = dossier_summary("D1", row, period)
    record = dossier_record("D1", row, period)
    if summary is None:
        assert not any(p == period for p, _ in counts) and record is None
        return
    assert summary["resolved"] == bool(counts.get((period, "resolved")))
    # Classified from named-tuple views of the stored events: what DossierEvents give.
    c = classify(live_events(history))
    assert (summary["procedure"], summary["received_at_us"], summary["channel"], summary["resolved_at_us"], summary["outcome"],
            summary["mode"], summary["voided"]) == (c.received_event.procedure_code if c.received_event else None, c.received_at_us,
                                                    c.channel, c.resolved_at_us, c.outcome, c.mode, c.voided)
    if summary["resolved"]:
        assert counts.get((period, summary["mode"])) == 1 and counts.get((period, summary["outcome"])) == 1
    if record is not None:
        assert record["counts"] == {name: n for (p, name), n in counts.items() if p == period and n}
        assert record["mode"] == summary["mode"] and rule_text(record).startswith("voided" if record["voided"] else record["mode"])
        assert record["resolved_at"] == (us_to_rfc3339(summary["resolved_at_us"]) if summary["resolved_at_us"] else None)


def test_an_agency_is_one_key_range_of_a_real_rocksdb(tmp_path: Path) -> None:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(tmp_path / "db"), options=options)
    try:
        for agency, dossier in (("T0", "x"), ("T01", "a"), ("T01", "b"), ("T011", "c"), ("T02", "d")):
            db[row_key(agency, dossier).encode()] = _dossier(dossier)
        assert [d for d, _ in agency_rows(db, "T01")] == ["a", "b"]
        assert [d for d, _ in agency_rows(db, "T03")] == []
        assert [d for d, _ in rows_by_id(db, "T01", ["b", "c", "zz"])] == ["b"]
        lines = [orjson.loads(line) for line in answer_lines(agency_rows(db, "T01"), "2024-11")]
        assert lines == [{"end": True, "dossiers": 0, "read": 2}]
        lines = [orjson.loads(line) for line in answer_lines(rows_by_id(db, "T01", ["a"]), "2024-11", by_id=True)]
        assert [line.get("dossier_id") for line in lines] == ["a", None] and lines[0]["counts"] == {}
    finally:
        db.close()


def test_the_query_is_checked() -> None:
    from streams.domain.registry import Registry

    registry = Registry.load()
    q = parse_query("agency=T01&period=2024-12&dossier=a&dossier=b&view=summary", registry)
    assert (q.agency, q.period, q.dossier_ids, q.view) == ("T01", "2024-12", ["a", "b"], "summary")
    for bad in ("agency=T01", "agency=ZZZ&period=2024-12", "agency=T01&period=2024-13", "agency=T01&period=2024-12&view=all",
                "agency=T01&period=2024-12&" + "&".join(f"dossier={n}" for n in range(501))):
        with pytest.raises(ConfigError):
            parse_query(bad, registry)


def test_the_advertised_url() -> None:
    assert load_settings({"metrics_host": "10.0.0.5", "metrics_port": 9200}, environ={}).worker_url == "http://10.0.0.5:9200"
    assert load_settings({}, environ={"EMC_ADVERTISED_URL": "https://w1.emc.example:9108/"}).worker_url == "https://w1.emc.example:9108"
    for bad in ("w1:9108", "ftp://w1:9108", "http://w1:9108/metrics"):
        with pytest.raises(ConfigError, match="EMC_ADVERTISED_URL"):
            load_settings({}, environ={"EMC_ADVERTISED_URL": bad})
