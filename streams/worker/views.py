"""The metrics view of one snapshot tick, built from what the tick read (pure: no I/O).

The timer reads the agency rows and counters of the partitions it owns (streams.worker.app);
this module turns those readings into the immutable `MetricsView` that the Prometheus
collector serves, so that the rules of what is exported are testable without a worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from streams.domain.control import ControlState, current_agency_targets
from streams.domain.periods import WINDOWS
from streams.domain.registry import SCOPES, Registry
from streams.domain.targets import block_targets
from streams.sinks.metrics import AgencyView, MetricsView


@dataclass(frozen=True, slots=True)
class AgencyReading:
    """One owned agency as the tick read it."""

    code: str
    status: str
    in_maintenance: bool
    last_event_us: int | None
    last_heartbeat_us: int | None
    counts_by_window: Mapping[str, Mapping[str, int]]  # window -> counts of its current period


def build_metrics_view(
    registry: Registry,
    readings: Iterable[AgencyReading],
    *,
    today: date,
    periods: Mapping[str, str],
    control: ControlState,
    is_leader: bool,
    block_counts: Mapping[tuple[str, str], Mapping[str, int]],
    consumer_lag: Mapping[tuple[str, int], int],
    state_lag: Mapping[int, int],
    worker: str,
) -> MetricsView:
    """Agencies valid today with their current counts; block figures and block targets from
    the leader only (one series per block over all workers); every consumer's lag."""
    views = []
    for reading in readings:
        agency = registry.get(reading.code)
        if agency is None or not agency.is_valid_on(today):
            continue
        views.append(AgencyView(
            reading.code, agency.block, agency.name, reading.status, reading.in_maintenance,
            reading.last_event_us, reading.last_heartbeat_us, reading.counts_by_window,
        ))
    blocks: dict[tuple[str, str], Mapping[str, int]] = {}
    targets: dict[tuple[str, str], float] = {}
    if is_leader:
        for window, period in periods.items():
            for block in SCOPES:
                counts = block_counts.get((block, period))
                if counts is not None:
                    blocks[(block, window)] = counts
        targets = {(scope, window): value for scope, value in block_targets(today.year).items() for window in WINDOWS}
    return MetricsView(
        agencies=tuple(views),
        block_counts_by_window=blocks,
        targets={**targets, **current_agency_targets(control, (view.code for view in views), periods)},
        consumer_lag=dict(consumer_lag),
        state_lag=dict(state_lag),
        worker=worker,
    )
