"""How a profile spreads its quotas over a long window: `even_split` (property tests), and a
whole-year run whose every month has the calibrated figures of a run of that month alone
(the plan, which the traffic reproduces exactly: tests/unit/simulation/test_simulator_profiles.py)."""

from __future__ import annotations

import math
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.registry import Registry
from streams.errors import InvariantError
from streams.simulation.calibration import even_split, unit_phase
from streams.simulation.profile import ProfileConfig, ProfileSimulation
from tests.support.published_figures import PUBLISHED_2024, PUBLISHED_2025_04, PUBLISHED_2025_04_PROCEDURES

REGISTRY = Registry.load()

weights_strategy = st.lists(st.one_of(st.just(1.0), st.just(0.0), st.floats(0.0, 5.0)), min_size=1, max_size=400)


@given(total=st.integers(0, 2000), weights=weights_strategy, phase=st.floats(0.0, 1.0, exclude_max=True))
def test_even_split_is_exact_and_every_running_sum_is_within_one(total: int, weights: list[float], phase: float) -> None:
    parts = even_split(total, weights, phase)
    assert len(parts) == len(weights) and all(p >= 0 for p in parts)
    weight_sum = sum(weights)
    if weight_sum <= 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    running_parts = running_weight = 0.0
    for part, weight in zip(parts, weights):
        running_parts += part
        running_weight += weight
        exact = total * running_weight / weight_sum
        assert abs(running_parts - exact) < 1 + 1e-9  # so any stretch (a month) is within two of its share
        assert abs(part - total * weight / weight_sum) < 1 + 1e-9 or weight == 0
        if weight == 0:
            assert part == 0


@given(total=st.integers(1, 200), days=st.integers(30, 366), phase=st.floats(0.0, 1.0, exclude_max=True))
def test_even_split_spreads_ties_along_the_window(total: int, days: int, phase: float) -> None:
    """Fewer dossiers than equal days: each stretch gets its share, not the first days all."""
    parts = even_split(total, [1.0] * days, phase)
    half = days // 2
    assert abs(sum(parts[:half]) - total * half / days) < 1 + 1e-9


def test_even_split_phases_differ_per_unit_and_are_checked() -> None:
    phases = [unit_phase(i) for i in range(80)]
    assert all(0 <= p < 1 for p in phases) and len({round(p, 6) for p in phases}) == 80
    with pytest.raises(InvariantError):
        even_split(3, [1.0, 1.0], 1.0)


@lru_cache(maxsize=None)
def _simulation(profile: str, period: str | None) -> ProfileSimulation:
    return ProfileSimulation(ProfileConfig(profile=profile, period=period, scale=0.001), REGISTRY)  # `emc simulate`'s defaults


def _headline(sim: ProfileSimulation, month: tuple[int, int]) -> dict[str, float]:
    plan = sim.month_plan(month)
    return {scope: 100 * plan.rate(None if scope == "national" else scope) for scope in ("national", "ministry", "province")}


def _procedure_rates(sim: ProfileSimulation, month: tuple[int, int]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {"full_online_procedures": {}, "full_online_procedures_used": {}}
    for scope in ("national", "ministry", "province"):
        totals = sim.procedures.totals(month, None if scope == "national" else scope)
        out["full_online_procedures"][scope] = 100 * totals["full_online_procedures_in_force"] / totals["procedures_in_force"]
        out["full_online_procedures_used"][scope] = \
            100 * totals["full_online_procedures_with_online_dossiers"] / totals["procedures_with_dossiers"]
    return out


@pytest.mark.parametrize(("profile", "published"), [("2024", PUBLISHED_2024), ("2025", PUBLISHED_2025_04)])
def test_every_month_of_a_whole_year_run_has_the_calibrated_fully_online_rates(profile: str, published: dict) -> None:
    """The default `emc simulate --profile` run is a whole year; the rates it was calibrated to
    (the year's for 2024, April's, applied all year, for 2025) hold in each of its months."""
    sim = _simulation(profile, None)
    months = sorted({(day.year, day.month) for day, _ in sim.days})
    assert len(months) == 12
    for month in months:
        for scope, rate in _headline(sim, month).items():
            assert abs(rate - published[scope]) < 1.0, (month, scope, rate)


@pytest.mark.parametrize(("profile", "month"), [("2025", (2025, 4)), ("2024", (2024, 12))])
def test_a_month_of_a_whole_year_run_has_the_figures_of_a_run_of_that_month(profile: str, month: tuple[int, int]) -> None:
    whole, alone = _simulation(profile, None), _simulation(profile, f"{month[0]}-{month[1]:02d}")
    for scope, rate in _headline(whole, month).items():
        assert abs(rate - _headline(alone, month)[scope]) < 1.0, (scope, rate)
    if profile == "2025":
        found, expected = _procedure_rates(whole, month), _procedure_rates(alone, month)
        for name, scopes in found.items():
            for scope, rate in scopes.items():
                assert abs(rate - expected[name][scope]) < 1.0, (name, scope, rate)
                assert abs(rate - PUBLISHED_2025_04_PROCEDURES[name][scope]) < 1.0, (name, scope, rate)
        portal = whole.procedures.totals(month)["received_national_portal"]
        assert portal == alone.procedures.totals(month)["received_national_portal"] == math.floor(1_600_000 * 0.001 + 0.5)


@pytest.mark.parametrize(("scale", "period"), [(0.0001, None), (0.0002, "2025-04"), (1.0, "2025-04")])
def test_indicator_1_holds_at_any_scale(scale: float, period: str | None) -> None:
    """Every unit has a catalogue however few its dossiers, so at a small scale the ministries'
    fewest procedures are many: the provinces' catalogues grow beside them to the published
    share, or the national indicator 1 leans to the ministries' rate (49.2 % at 0.0002)."""
    sim = ProfileSimulation(ProfileConfig(profile="2025", period=period, scale=scale, min_resolved=40), REGISTRY)
    found = _procedure_rates(sim, (2025, 4))["full_online_procedures"]
    for scope, rate in found.items():
        assert abs(rate - PUBLISHED_2025_04_PROCEDURES["full_online_procedures"][scope]) < 0.1, (scope, rate)


def test_a_share_that_is_whole_in_exact_arithmetic_is_not_pushed_onto_a_zero_weight() -> None:
    # 7 × 2.35 / 2.35 is 6.999… in floats: found by the property test above.
    assert even_split(7, [2.35, 0.0], 0.0) == [7, 0]
