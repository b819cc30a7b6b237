"""The metrics view a snapshot tick builds from what it read (streams.worker.views)."""

from __future__ import annotations

from datetime import date

from streams.domain.control import ControlState
from streams.domain.registry import Registry
from streams.worker.views import AgencyReading, build_metrics_view

REGISTRY = Registry.load()
TODAY = date(2025, 8, 15)
PERIODS = {"day": "2025-08-15", "month": "2025-08", "quarter": "2025-Q3", "year": "2025"}


def _reading(code: str) -> AgencyReading:
    return AgencyReading(code, "active", False, 1, None, {"month": {"resolved": 4, "full_online": 3}})


def _view(codes: list[str], is_leader: bool):
    return build_metrics_view(
        REGISTRY, [_reading(c) for c in codes], today=TODAY, periods=PERIODS, control=ControlState.of([]),
        is_leader=is_leader, block_counts={("national", "2025-08"): {"resolved": 10}, ("province", "2024-12"): {"resolved": 1}},
        consumer_lag={("emc.dossier-batches.v1", 2): 7}, state_lag={2: 7}, worker="w1",
    )


def test_agencies_valid_today_with_their_block_and_name_and_the_lag_of_every_stage() -> None:
    valid = next(a for a in REGISTRY if a.is_valid_on(TODAY))
    gone = next((a for a in REGISTRY if not a.is_valid_on(TODAY)), None)
    view = _view([valid.code] + ([gone.code] if gone else []) + ["NOT-AN-AGENCY"], is_leader=False)
    assert [(a.code, a.block, a.name) for a in view.agencies] == [(valid.code, valid.block, valid.name)]
    assert view.agencies[0].counts_by_window == {"month": {"resolved": 4, "full_online": 3}}
    assert view.consumer_lag == {("emc.dossier-batches.v1", 2): 7} and view.state_lag == {2: 7} and view.worker == "w1"


def test_only_the_leader_exports_block_figures_and_block_targets_of_the_current_periods() -> None:
    follower, leader = _view([], is_leader=False), _view([], is_leader=True)
    assert follower.block_counts_by_window == {} and follower.targets == {}
    assert leader.block_counts_by_window == {("national", "month"): {"resolved": 10}}
    assert leader.targets[("national", "quarter")] == 0.8
