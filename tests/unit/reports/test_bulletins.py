"""Published bulletins and finality (issue 15): the pure rules, the event counts of the state
stage under replays, and a report rebuilt from a bulletin."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from streams.domain.bulletin import (
    bulletin_key,
    canonical_json,
    frozen_fields,
    parse_bulletin_key,
    restated_agency_count,
    restatements,
    seal_holds,
    sealed,
)
from streams.domain.finality import (
    CLOSED,
    EVENT_COUNT_FIELDS,
    OPEN,
    PUBLISHED,
    RESTATED,
    event_increments,
    period_end_us,
    period_finality,
)
from streams.domain.periods import periods_of_us
from streams.domain.rankings import block_rankings
from streams.domain.registry import Registry
from streams.reports.bulletins import build_document, inputs_of
from streams.reports.gather import Finality, ReportInputs, build_report
from streams.reports.render import render
from streams.worker.state import CounterRow, StateApplier, split_counter_key
from tests.support.simulated import faulty_stream
from tests.support.stores import journaled_stores

REGISTRY = Registry.load()


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * 1_000_000


def test_a_period_ends_at_midnight_asia_ho_chi_minh() -> None:
    assert period_end_us("2024-12") == _us("2024-12-31T17:00:00Z")
    assert period_end_us("2024-12-31") == _us("2024-12-31T17:00:00Z")
    assert period_end_us("2024-Q4") == period_end_us("2024") == _us("2024-12-31T17:00:00Z")
    assert period_end_us("2024-02") == _us("2024-02-29T17:00:00Z")  # leap year
    end = period_end_us("2025-04")
    after = event_increments(duplicate=False, event_type="received", supersedes=None, applied_at_us=end, period_end=end)
    before = event_increments(duplicate=False, event_type="received", supersedes=None, applied_at_us=end - 1, period_end=end)
    assert after == {"events_applied": 1, "events_after_close": 1} and before == {"events_applied": 1}
    assert event_increments(duplicate=True, event_type="voided", supersedes="x", applied_at_us=end, period_end=end) \
        == {"events_duplicates": 1}
    assert event_increments(duplicate=False, event_type="voided", supersedes="x", applied_at_us=0, period_end=end) \
        == {"events_applied": 1, "events_corrections": 1, "events_voids": 1}


def test_finality_states() -> None:
    end = period_end_us("2025-04")
    assert period_finality("2025-04", end - 1, None, False) == OPEN
    assert period_finality("2025-04", end, None, False) == CLOSED
    assert period_finality("2025-04", end, 2, False) == PUBLISHED
    assert period_finality("2025-04", end, 2, True) == RESTATED


@given(st.sampled_from(["2024", "2024-Q3", "2024-12", "2025-02-28"]), st.integers(min_value=1, max_value=10_000))
def test_bulletin_keys_round_trip(period: str, version: int) -> None:
    assert parse_bulletin_key(bulletin_key(period, version)) == (period, version)


def test_bulletin_keys_that_are_not_ours_are_refused() -> None:
    for key in ("2024-12", "2024-12:v0", "2024-12:v", "x:v1", "2024-13-40:v1:extra"):
        assert parse_bulletin_key(key) is None


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(min_value=-(2**53), max_value=2**53), min_size=1),
       st.text(max_size=5))
def test_the_seal_covers_every_byte_of_the_content(content: dict, extra: str) -> None:
    doc = sealed({"period": "2024-12", "content": content})
    assert seal_holds(doc)
    assert canonical_json(doc) == canonical_json({"content": content, "period": "2024-12"})  # key order is irrelevant
    tampered = {**doc, "content": {**content, next(iter(content)): content[next(iter(content))] + 1}}
    assert not seal_holds(tampered)
    assert not seal_holds({**doc, "note": extra})


def test_frozen_fields_keep_figures_not_bookkeeping() -> None:
    frozen = frozen_fields({b"resolved": b"4", b"full_online_rate": b"0.500000", b"updated_at": b"x",
                            b"last_changed_at": b"y", b"published_version": b"1", b"events_applied": b"9"})
    assert frozen == {"resolved": 4, "full_online_rate": "0.500000", "events_applied": 9}


def _hashes(counts: dict[str, dict[str, int]]) -> dict[str, dict]:
    return {code: dict(c) for code, c in counts.items()}


def test_restatements_name_each_changed_agency_with_its_rank_and_status() -> None:
    before = {"T01": {"full_online": 1, "resolved": 20, "events_applied": 40},  # 5 %: under 10 %
              "T04": {"full_online": 3, "resolved": 4, "events_applied": 8},
              "T11": {"full_online": 1, "resolved": 2, "events_applied": 4}}
    now = {**before, "T01": {"full_online": 16, "resolved": 30, "events_applied": 61, "events_after_close": 21,
                             "events_duplicates": 2}}
    statuses: dict[str, str] = {}
    rank = lambda c: block_rankings(REGISTRY, "2024-12", c, statuses, date(2025, 1, 5), "as-was")  # noqa: E731
    changes = restatements(before, now, rank(before), rank(now), {"T01": ("Hà Nội", "province")})
    assert [c.code for c in changes] == ["T01"]
    t01 = changes[0]
    assert t01.before == {"full_online": 1, "resolved": 20} and t01.now == {"full_online": 16, "resolved": 30}
    assert (t01.rank_before, t01.rank_now) == (3, 2) and t01.rank_changed
    assert t01.under_before and not t01.under_now and t01.under_changed
    assert t01.events == {"events_applied": 21, "events_after_close": 21, "events_corrections": 0, "events_voids": 0,
                          "events_duplicates": 2}
    assert restated_agency_count(before, now) == 1 and restated_agency_count(before, before) == 0
    assert restatements(before, before, rank(before), rank(before), {}) == []


def _event_rows(stores) -> dict:  # noqa: ANN001
    return {split_counter_key(k): CounterRow.decode(v).events for k, v in stores.counters.data.items()}


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # slow: no shrinking
@given(st.integers(min_value=0, max_value=10_000), st.lists(st.integers(min_value=0, max_value=10_000), max_size=4))
def test_event_counts_are_exact_through_redeliveries(seed: int, cuts: list[int]) -> None:
    """The event counts of every row are the same whether the stream is applied once or
    re-delivered from older offsets any number of times (the per-row offset rule)."""
    events = faulty_stream(seed, dossiers=40)
    now = _us("2025-01-20T00:00:00Z")
    once = journaled_stores()
    StateApplier(once).apply_batch(events, now_us=now)
    replayed = journaled_stores()
    applier = StateApplier(replayed)
    done = 0
    for cut in sorted(c % (len(events) + 1) for c in cuts):
        applier.apply_batch(events[done:cut] if cut > done else [], now_us=now)
        restart = cut // 2  # re-delivered from an older commit
        applier.apply_batch(events[restart:cut], now_us=now)
        done = max(done, cut)
    applier.apply_batch(events[done:], now_us=now)
    assert _event_rows(replayed) == _event_rows(once)
    # Independent: each duplicate counts once in the rows of its own day, and an applied event
    # in the rows whose counts it changed (the day rows' counts say which changed: at least
    # one event per nonzero day row).
    seen: set[tuple[str, str]] = set()
    duplicates: dict[tuple[str, str], int] = {}
    for item in events:
        e = item.event
        if e.type == "heartbeat":
            continue
        if (e.agency_code, e.event_id) in seen:
            key = (e.agency_code, periods_of_us(e.occurred_at_us)[0])
            duplicates[key] = duplicates.get(key, 0) + 1
        seen.add((e.agency_code, e.event_id))
    rows = _event_rows(once)
    assert {k: r["events_duplicates"] for k, r in rows.items() if r.get("events_duplicates") and len(k[1]) == 10} \
        == duplicates
    for key, got in rows.items():
        # Applied at `now`: after the close of every period ended by then, of no other.
        closed = period_end_us(key[1]) <= now
        assert got.get("events_after_close", 0) == (got.get("events_applied", 0) if closed else 0), key
        assert set(got) <= set(EVENT_COUNT_FIELDS)
    counts = {split_counter_key(k): CounterRow.decode(v).counts for k, v in once.counters.data.items()}
    for key, c in counts.items():
        if any(c.values()):
            assert rows[key].get("events_applied", 0) >= 1, key


def _inputs() -> ReportInputs:
    agencies = {"T01": {"full_online": 3, "resolved": 4, "full_online_rate": "0.750000"},
                "T04": {"full_online": 0, "resolved": 2, "full_online_rate": "0.000000"},
                "BCT": {"full_online": 1, "resolved": 1, "full_online_rate": "1.000000"}}
    return ReportInputs(
        period="2024-12",
        agency_counts={c: {k: v for k, v in f.items() if k != "full_online_rate"} for c, f in agencies.items()},
        block_counts={"national": {"full_online": 4, "resolved": 7}, "province": {"full_online": 3, "resolved": 6},
                      "ministry": {"full_online": 1, "resolved": 1}},
        agency_targets={"T01": "0.8"}, statuses={"T04": "silent"}, maintenance_windows={},
    ), agencies


def test_a_report_rebuilt_from_a_bulletin_is_the_same_bytes() -> None:
    inputs, agencies = _inputs()
    published_at = datetime(2025, 1, 5, 2, 0, tzinfo=timezone.utc)
    blocks = {scope: dict(c) for scope, c in inputs.block_counts.items()}
    doc = build_document(REGISTRY, "2024-12", 1, "tháng 12", published_at, agencies, blocks, inputs)
    assert seal_holds(doc) and doc["published_on"] == "2025-01-05"
    assert [e["code"] for e in doc["rankings"]["as-was"]["province"]["ranking"]] == ["T01", "T04"]
    for fmt in ("text", "json", "html"):
        for view in ("as-was", "restated"):
            live = build_report(inputs, REGISTRY, view=view, today=date(2025, 1, 5), now=published_at,
                                finality=Finality(PUBLISHED, 1))
            frozen = build_report(inputs_of(doc), REGISTRY, view=view, today=date(2025, 1, 5), now=published_at,
                                  finality=Finality(PUBLISHED, 1))
            assert render(frozen, fmt, "vi") == render(live, fmt, "vi")
    text = render(live, "text", "en")
    assert "Status of the figures: published (version 1)" in text
    assert "Tình trạng số liệu: đã điều chỉnh sau khi công bố (phiên bản 1)" in render(
        build_report(inputs, REGISTRY, today=date(2025, 1, 5), now=published_at, finality=Finality(RESTATED, 1)), "text", "vi")


def test_the_bulletin_gauges_stop_when_the_leader_stops_renewing_them(monkeypatch) -> None:  # noqa: ANN001
    import streams.sinks.metrics as metrics

    collector = metrics.BulletinCollector()
    collector.update({"2024-12": metrics.PublishedPeriod(2, 3, -0.004), "2024": metrics.PublishedPeriod(1, 0, None)})
    samples = {(f.name, s.labels["period"]): s.value for f in collector.collect() for s in f.samples}
    assert samples == {("emc_bulletin_published_version", "2024"): 1, ("emc_bulletin_published_version", "2024-12"): 2,
                       ("emc_bulletin_restated_agencies", "2024"): 0, ("emc_bulletin_restated_agencies", "2024-12"): 3,
                       ("emc_bulletin_national_ratio_change", "2024-12"): -0.004}
    later = metrics.time.monotonic() + metrics.BulletinCollector.FRESH_S + 1
    monkeypatch.setattr(metrics.time, "monotonic", lambda: later)
    assert [s for f in collector.collect() for s in f.samples] == []
