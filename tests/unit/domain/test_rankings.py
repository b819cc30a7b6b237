"""Rankings (streams/domain/rankings.py): ties, undefined rates, top N, under 10 %, status lists."""

from __future__ import annotations

import random
from datetime import date
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.control import make_maintenance
from streams.domain.periods import parse_period
from streams.domain.rankings import (
    UnitFigures,
    build_block_ranking,
    rank_units,
    ranking_json,
    units_of_period,
)
from streams.domain.registry import Registry

REGISTRY = Registry.load()


def unit(code: str, full: int, resolved: int) -> UnitFigures:
    return UnitFigures(code, f"name {code}", f"name {code}", "province", full, resolved)


@st.composite
def unit_lists(draw: st.DrawFn) -> list[UnitFigures]:
    n = draw(st.integers(0, 25))
    codes = draw(st.lists(st.text("ABCDEFGHIJ0123456789", min_size=2, max_size=4), min_size=n, max_size=n, unique=True))
    out = []
    for code in codes:
        # Small numbers so that equal rates (ties) are frequent, including 1/2 vs 2/4.
        resolved = draw(st.integers(0, 6))
        full = draw(st.integers(0, resolved))
        out.append(unit(code, full, resolved))
    return out


def _higher(a: UnitFigures, b: UnitFigures) -> bool:
    """a's rate is strictly above b's, by cross-multiplication (no Fraction, no float)."""
    return a.full_online * b.resolved > b.full_online * a.resolved


@settings(max_examples=300, deadline=None)
@given(unit_lists(), st.randoms(use_true_random=False))
def test_ranking_does_not_depend_on_input_order(units: list[UnitFigures], rnd: random.Random) -> None:
    shuffled = list(units)
    rnd.shuffle(shuffled)
    assert rank_units(units) == rank_units(shuffled)


@settings(max_examples=300, deadline=None)
@given(unit_lists())
def test_ranks_and_tie_breaks(units: list[UnitFigures]) -> None:
    ranking = rank_units(units)
    rated = [u for u in units if u.resolved > 0]
    # Undefined rates are never ranked; every defined one is, once.
    assert sorted(e.unit.code for e in ranking) == sorted(u.code for u in rated)
    for entry in ranking:
        # Competition rank: 1 + the number of units with a strictly higher rate.
        assert entry.rank == 1 + sum(_higher(other, entry.unit) for other in rated)
    for first, second in zip(ranking, ranking[1:]):
        a, b = first.unit, second.unit
        assert not _higher(b, a)
        if not _higher(a, b):  # same rate: same rank, more resolved first, then code
            assert first.rank == second.rank
            assert a.resolved > b.resolved or (a.resolved == b.resolved and a.code < b.code)
        else:
            assert second.rank > first.rank


@settings(max_examples=300, deadline=None)
@given(unit_lists(), st.integers(0, 7), st.integers(1, 12))
def test_top_and_under_threshold_are_consistent_with_the_ranking(units: list[UnitFigures], percent: int, n: int) -> None:
    period = parse_period("2024")
    counts = {u.code: {"full_online": u.full_online, "resolved": u.resolved} for u in units}
    ranking = build_block_ranking(
        "province", period, counts, REGISTRY, {}, status_day=date(2024, 12, 31), unit_codes=[u.code for u in units],
        threshold=Fraction(percent * 15, 100),
    )
    entries = list(ranking.ranking)
    top = list(ranking.top(n))
    assert top == entries[: len(top)]  # a prefix
    assert len(top) >= min(n, len(entries))
    assert all(e.rank <= n for e in top) and all(e.rank > n for e in entries[len(top):])
    under = list(ranking.under_threshold)
    assert under == entries[len(entries) - len(under):]  # a suffix
    threshold = Fraction(percent * 15, 100)
    assert {e.unit.code for e in under} == {
        u.code for u in units if u.resolved > 0 and u.full_online * 100 < percent * 15 * u.resolved
    }
    # Units with nothing resolved: no figure, never 0 %.
    assert {u.code for u in ranking.no_figure} == {u.code for u in units if u.resolved == 0}
    assert threshold == ranking.threshold


def test_tied_rates_share_a_rank_and_the_next_rank_skips() -> None:
    units = [unit("T04", 1, 2), unit("T01", 9, 10), unit("T11", 2, 4), unit("T12", 1, 2), unit("T14", 0, 5)]
    ranking = rank_units(units)
    assert [(e.rank, e.unit.code) for e in ranking] == [(1, "T01"), (2, "T11"), (2, "T04"), (2, "T12"), (5, "T14")]


def test_zero_resolved_is_no_figure_not_zero_percent() -> None:
    period = parse_period("2025-05")
    counts = {"T01": {"full_online": 0, "resolved": 3, "received": 3}, "T04": {"received": 7}, "T11": {}}
    ranking = build_block_ranking("province", period, counts, REGISTRY, {}, status_day=date(2025, 5, 31))
    assert [e.unit.code for e in ranking.ranking] == ["T01"]
    assert [e.unit.code for e in ranking.under_threshold] == ["T01"]  # 0 of 3 is 0 %
    no_figure = {u.code for u in ranking.no_figure}
    assert {"T04", "T11"} <= no_figure and "T01" not in no_figure
    doc = ranking_json(ranking)
    assert all(item["rate"] is None for item in doc["no_figure"])
    assert doc["ranking"][0]["rate"] == 0.0


def test_units_of_a_period_follow_the_registry_dates() -> None:
    june, july = parse_period("2025-06"), parse_period("2025-07")
    in_june = {a.code for a in units_of_period(REGISTRY, "province", june)}
    in_july = {a.code for a in units_of_period(REGISTRY, "province", july)}
    assert "T35" in in_june and "T37-2025" not in in_june
    assert "T35" not in in_july and "T37-2025" in in_july
    assert len(in_july) == 34 and len(in_june) == 63
    whole_year = {a.code for a in units_of_period(REGISTRY, "province", parse_period("2025"))}
    assert whole_year == in_june | in_july
    # A late event of a unit merged away still shows in the as-was ranking of its period.
    late = build_block_ranking("province", july, {"T35": {"full_online": 1, "resolved": 1}}, REGISTRY, {},
                               status_day=date(2025, 7, 31))
    assert [e.unit.code for e in late.ranking] == ["T35"]


def test_status_lists_list_todays_units_of_the_block() -> None:
    statuses = {"T01": "silent", "T04": "never", "T35": "never", "BCT": "maintenance", "T11": "maintenance", "T12": "connected"}
    ranking = build_block_ranking("province", parse_period("2025-04"), {}, REGISTRY, statuses, status_day=date(2026, 1, 1))
    assert [u.code for u in ranking.with_status("silent")] == ["T01"]
    assert [u.code for u in ranking.with_status("never")] == ["T04"]  # T35 was merged away
    assert [u.code for u in ranking.with_status("maintenance")] == ["T11"]  # BCT is a ministry


def test_units_in_maintenance_during_a_period_are_those_whose_windows_touch_its_local_days() -> None:
    def window(start: str, until: str):
        return make_maintenance(REGISTRY, "T46", start, until, "nâng cấp", "2024-01-01T00:00:00Z")

    cases = [
        (window("2024-12-02T00:00:00+07:00", "2024-12-23T00:00:00+07:00"), {"2024", "2024-Q4", "2024-12", "2024-12-22"}, {"2024-12-23", "2024-11"}),
        # ends at the first instant of 2025 in Việt Nam (17:00Z): 2025 is not touched
        (window("2024-12-31T10:00:00Z", "2024-12-31T17:00:00Z"), {"2024-12-31", "2024"}, {"2025-01-01", "2025"}),
        # one second into 2025 in Việt Nam: 2025-01-01 is touched
        (window("2024-12-31T10:00:00Z", "2024-12-31T17:00:01Z"), {"2025-01-01", "2025-Q1"}, {"2025-01-02"}),
    ]
    for found, inside, outside in cases:
        for text in inside | outside:
            ranking = build_block_ranking("province", parse_period(text), {}, REGISTRY, {}, status_day=date(2025, 1, 1),
                                          maintenance_windows={"T46": [found]})
            listed = [(u.code, u.windows) for u in ranking.maintained]
            assert listed == ([("T46", (found,))] if text in inside else []), (found, text)
    ministries = build_block_ranking("ministry", parse_period("2024"), {}, REGISTRY, {}, status_day=date(2025, 1, 1),
                                     maintenance_windows={"T46": [cases[0][0]]})
    assert ministries.maintained == ()


def test_a_period_names_its_units_as_they_were_named_then() -> None:
    """A bulletin on 2024 says Thừa Thiên Huế; one on 2025 (or today's status lists) says Huế."""
    counts = {"T46": {"full_online": 1, "resolved": 4}}
    window = make_maintenance(REGISTRY, "T46", "2024-12-02T00:00:00+07:00", "2024-12-23T00:00:00+07:00", "nâng cấp",
                              "2024-01-01T00:00:00Z")
    names = {}
    for text in ("2024", "2024-12-31", "2025-01-01", "2025"):
        ranking = build_block_ranking("province", parse_period(text), counts, REGISTRY, {"T46": "silent"},
                                      status_day=date(2025, 6, 1), maintenance_windows={"T46": [window]})
        [ranked] = [entry.unit for entry in ranking.ranking if entry.unit.code == "T46"]
        [silent] = [unit for unit in ranking.status_units if unit.code == "T46"]
        names[text] = {ranked.name, silent.name, *(unit.name for unit in ranking.maintained)}
    assert names == {"2024": {"Thừa Thiên Huế"}, "2024-12-31": {"Thừa Thiên Huế"}, "2025-01-01": {"Huế"}, "2025": {"Huế"}}
    # A period still running is named as of the status day.
    early = build_block_ranking("province", parse_period("2024"), counts, REGISTRY, {}, status_day=date(2024, 6, 1))
    assert [entry.unit.name for entry in early.ranking if entry.unit.code == "T46"] == ["Thừa Thiên Huế"]
