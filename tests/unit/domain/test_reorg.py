"""The 2025 reorganisation: as-was vs restated figures across a merger boundary."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.dossier import COUNT_FIELDS
from streams.domain.periods import parse_period
from streams.domain.rankings import block_rankings, build_block_ranking
from streams.domain.registry import Registry
from streams.domain.reorg import restate, restated_units

REGISTRY = Registry.load()
TODAY = date(2026, 1, 15)
# Nghị quyết 202/2025/QH15: Hà Nam (T35) + Nam Định (T36) + Ninh Bình (T37) -> Ninh Bình (T37-2025) from 2025-07-01.
MERGED = ("T35", "T36", "T37")


def test_registry_fixture_is_the_merger_we_test() -> None:
    for code in MERGED:
        assert REGISTRY.get(code).valid_to == date(2025, 6, 30)
        assert REGISTRY.final_successor(code, TODAY) == "T37-2025"
    assert REGISTRY.get("T37-2025").valid_from == date(2025, 7, 1)


def test_june_as_was_shows_the_old_provinces_and_restated_shows_the_successor() -> None:
    june = {"T35": {"full_online": 1, "resolved": 1}, "T37": {"full_online": 0, "resolved": 3}, "T01": {"full_online": 2, "resolved": 4}}
    as_was = block_rankings(REGISTRY, "2025-06", june, {}, TODAY, "as-was")["province"]
    assert {e.unit.code: (e.unit.full_online, e.unit.resolved) for e in as_was.ranking} == {
        "T35": (1, 1), "T37": (0, 3), "T01": (2, 4)}
    assert "T36" in {u.code for u in as_was.no_figure} and "T37-2025" not in {u.code for u in as_was.no_figure}
    restated = block_rankings(REGISTRY, "2025-06", june, {}, TODAY, "restated")["province"]
    by_code = {e.unit.code: e.unit for e in restated.ranking}
    assert set(by_code) == {"T37-2025", "T01"}
    merged = by_code["T37-2025"]
    assert (merged.full_online, merged.resolved) == (1, 4)
    assert merged.rate * 4 == 1  # recomputed from the sums (25 %), not the mean of 100 % and 0 %
    assert merged.merged_from == ("T35", "T37")
    assert restated.view == "restated" and as_was.view == "as-was"
    assert {u.code for u in restated.no_figure} | set(by_code) == set(restated_units(REGISTRY, "province", TODAY))


def test_a_year_restated_sums_both_sides_of_the_merger() -> None:
    # 2025 as the workers write it: T35/T36 before July, T37-2025 after, and one late T35 event after July.
    year = {"T35": {"full_online": 3, "resolved": 5, "received": 6}, "T36": {"full_online": 0, "resolved": 2},
            "T37-2025": {"full_online": 7, "resolved": 8, "received": 9}}
    summed, sources = restate(year, REGISTRY, TODAY)
    assert summed == {"T37-2025": {"full_online": 10, "resolved": 15, "received": 15}}
    assert sources == {"T37-2025": ("T35", "T36", "T37-2025")}
    as_was = build_block_ranking("province", parse_period("2025"), year, REGISTRY, {}, status_day=TODAY)
    assert [e.unit.code for e in as_was.ranking] == ["T37-2025", "T35", "T36"]


def test_absorbed_ministries_go_to_the_ministry_of_finance() -> None:
    counts = {"BHXH": {"full_online": 5, "resolved": 10}, "BKHDT": {"full_online": 1, "resolved": 1},
              "BTC": {"full_online": 0, "resolved": 1}}
    ministry = block_rankings(REGISTRY, "2024", counts, {}, TODAY, "restated")["ministry"]
    assert [(e.unit.code, e.unit.full_online, e.unit.resolved) for e in ministry.ranking] == [("BTC", 6, 12)]
    # Restated onto a day before the reorganisation, nothing moves.
    before, _ = restate(counts, REGISTRY, date(2025, 2, 28))
    assert before == counts


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([a.code for a in REGISTRY]),
                       st.fixed_dictionaries({f: st.integers(0, 50) for f in ("full_online", "resolved", "received")}),
                       max_size=30),
       st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 1, 1)))
def test_restating_keeps_block_totals(counts: dict, on: date) -> None:
    summed, sources = restate(counts, REGISTRY, on)
    for block in ("ministry", "province"):
        for field in ("full_online", "resolved", "received"):
            before = sum(v[field] for c, v in counts.items() if REGISTRY.get(c).block == block)
            after = sum(v.get(field, 0) for c, v in summed.items() if REGISTRY.get(c).block == block)
            assert before == after
    assert sorted(c for codes in sources.values() for c in codes) == sorted(counts)
    assert all(REGISTRY.get(c).is_valid_on(on) or REGISTRY.get(c).valid_from > on for c in summed)
    assert set(COUNT_FIELDS) >= {"full_online", "resolved", "received"}
