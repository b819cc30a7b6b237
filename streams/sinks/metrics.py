"""Prometheus metrics (contract section 5).

Gauges are computed at scrape time by a collector from an immutable `MetricsView` that the
worker's timer replaces every tick; the scrape thread never touches Faust tables. The
registry is passed in (a fresh one per test). `emc_events_total` is a plain counter,
incremented as each event is handled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.domain.dossier import MODES, full_online_rate
from streams.domain.indicators import indicators
from streams.domain.instants import US_PER_S
from streams.domain.periods import WINDOWS
from streams.domain.snapshot import AGENCY_STATUSES


@dataclass(frozen=True, slots=True)
class AgencyView:
    code: str
    block: str
    name: str
    status: str
    maintenance: bool
    last_event_us: int | None
    last_heartbeat_us: int | None
    counts_by_window: Mapping[str, Mapping[str, int]]  # window -> counts of the current period


@dataclass(frozen=True, slots=True)
class MetricsView:
    agencies: tuple[AgencyView, ...] = ()
    block_counts_by_window: Mapping[tuple[str, str], Mapping[str, int]] = field(default_factory=dict)
    targets: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (scope, window) -> ratio
    # (topic, partition) -> messages not yet done, for every topic the worker consumes: the
    # input topic (ingest), the batch topic (state stage), the changelogs while restoring
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    # batch partition -> batch messages ingested but not yet applied by this worker
    state_lag: Mapping[int, int] = field(default_factory=dict)
    worker: str = ""


class EmcCollector(Collector):
    def __init__(self) -> None:
        self.view = MetricsView()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.view  # one consistent view per scrape
        dossiers = GaugeMetricFamily(
            "emc_dossiers", "Resolved dossiers in the current calendar period, by mode (all = resolved)",
            labels=["agency", "block", "mode", "window"],
        )
        ratio = GaugeMetricFamily(
            "emc_full_online_ratio", "full_online / resolved in the current period; absent when nothing resolved",
            labels=["agency", "block", "window"],
        )
        last_event = GaugeMetricFamily(
            "emc_agency_last_event_timestamp_seconds", "occurred_at of the agency's latest dossier event",
            labels=["agency"],
        )
        last_heartbeat = GaugeMetricFamily(
            "emc_agency_last_heartbeat_timestamp_seconds", "occurred_at of the agency's latest heartbeat",
            labels=["agency"],
        )
        maintenance = GaugeMetricFamily("emc_agency_maintenance", "1 while the agency is declared in maintenance", labels=["agency"])
        status = GaugeMetricFamily(
            "emc_agency_status", "1 for the agency's current status, 0 for the others",
            labels=["agency", "block", "status"],
        )
        info = GaugeMetricFamily("emc_agency_info", "Agency names for joins", labels=["agency", "block", "name"])
        for agency in view.agencies:
            for window in WINDOWS:
                counts = agency.counts_by_window.get(window, {})
                for mode in MODES:
                    dossiers.add_metric([agency.code, agency.block, mode, window], counts.get(mode, 0))
                resolved = counts.get("resolved", 0)
                dossiers.add_metric([agency.code, agency.block, "all", window], resolved)
                rate = full_online_rate(counts.get("full_online", 0), resolved)
                if rate is not None:
                    ratio.add_metric([agency.code, agency.block, window], rate)
            if agency.last_event_us is not None:
                last_event.add_metric([agency.code], agency.last_event_us / US_PER_S)
            if agency.last_heartbeat_us is not None:
                last_heartbeat.add_metric([agency.code], agency.last_heartbeat_us / US_PER_S)
            maintenance.add_metric([agency.code], 1.0 if agency.maintenance else 0.0)
            for name in AGENCY_STATUSES:
                status.add_metric([agency.code, agency.block, name], 1.0 if agency.status == name else 0.0)
            info.add_metric([agency.code, agency.block, agency.name], 1.0)
        yield from (dossiers, ratio, last_event, last_heartbeat, maintenance, status, info)

        indicator = GaugeMetricFamily(
            "emc_indicator_ratio", "Secondary indicator of the agency in the current period (0-1; absent when undefined)",
            labels=["agency", "block", "indicator", "window"],
        )
        for agency in view.agencies:
            for window in WINDOWS:
                for name, value in indicators(agency.counts_by_window.get(window, {})).items():
                    indicator.add_metric([agency.code, agency.block, name, window], value)
        yield indicator

        uncatalogued = GaugeMetricFamily(
            "emc_procedures_not_in_catalogue",
            "Procedures with dossiers received in the current period that are not in force in the procedure catalogue",
            labels=["agency", "block", "window"],
        )
        for agency in view.agencies:
            for window in WINDOWS:
                counts = agency.counts_by_window.get(window, {})
                uncatalogued.add_metric([agency.code, agency.block, window], counts.get("procedures_not_in_catalogue", 0))
        yield uncatalogued

        block_ratio = GaugeMetricFamily(
            "emc_block_full_online_ratio", "full_online / resolved over a block or the nation, current period",
            labels=["block", "window"],
        )
        for (block, window), counts in sorted(view.block_counts_by_window.items()):
            rate = full_online_rate(counts.get("full_online", 0), counts.get("resolved", 0))
            if rate is not None:
                block_ratio.add_metric([block, window], rate)
        yield block_ratio

        block_indicator = GaugeMetricFamily(
            "emc_block_indicator_ratio", "Secondary indicator over a block or the nation, current period (absent when undefined)",
            labels=["block", "indicator", "window"],
        )
        for (block, window), counts in sorted(view.block_counts_by_window.items()):
            for name, value in indicators(counts).items():
                block_indicator.add_metric([block, name, window], value)
        yield block_indicator

        target = GaugeMetricFamily("emc_target_ratio", "Target full-online ratio", labels=["scope", "window"])
        for (scope, window), value in sorted(view.targets.items()):
            target.add_metric([scope, window], value)
        yield target

        lag = GaugeMetricFamily(
            "emc_consumer_lag_messages",
            "Messages not yet done, per partition of every consumed topic (input, batch, changelogs while restoring)",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(view.consumer_lag.items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag

        state_lag = GaugeMetricFamily(
            "emc_state_lag_messages",
            "Batch messages ingested but not yet applied by this worker's state stage, per state partition",
            labels=["partition"],
        )
        for partition, value in sorted(view.state_lag.items()):
            state_lag.add_metric([str(partition)], value)
        yield state_lag

        worker = GaugeMetricFamily("emc_worker_info", "This worker", labels=["worker"])
        worker.add_metric([view.worker], 1.0)
        yield worker


@dataclass(frozen=True, slots=True)
class PublishedPeriod:
    """A published period compared with its latest version (streams/reports/bulletins.py)."""

    version: int
    restated_agencies: int  # agencies whose counts differ from the version
    national_ratio_change: float | None  # national full_online_rate now - as published; None if either undefined


class BulletinCollector(Collector):
    """The leader's gauges of published periods. A view not renewed within `FRESH_S` is no
    longer exported, so a worker that stopped being the leader stops exporting them."""

    FRESH_S = 60.0

    def __init__(self) -> None:
        self._view: Mapping[str, PublishedPeriod] = {}
        self._expires = 0.0

    def update(self, view: Mapping[str, PublishedPeriod]) -> None:
        self._view, self._expires = dict(view), time.monotonic() + self.FRESH_S

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self._view if time.monotonic() < self._expires else {}
        version = GaugeMetricFamily("emc_bulletin_published_version", "Latest published version of the period",
                                    labels=["period"])
        restated = GaugeMetricFamily(
            "emc_bulletin_restated_agencies", "Agencies whose counts differ from the period's latest published version",
            labels=["period"])
        change = GaugeMetricFamily(
            "emc_bulletin_national_ratio_change",
            "National full-online ratio now minus as published in the latest version (absent when undefined)",
            labels=["period"])
        for period, published in sorted(view.items()):
            version.add_metric([period], published.version)
            restated.add_metric([period], published.restated_agencies)
            if published.national_ratio_change is not None:
                change.add_metric([period], published.national_ratio_change)
        yield from (version, restated, change)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry
    events: Counter
    collector: EmcCollector
    bulletins: BulletinCollector
    unauthenticated: Counter  # events whose signature failed, by claimed agency and reason
    refilled: Counter  # batch messages the state stage read past its consumer, by why


def create_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    events = Counter(
        "emc_events", "Consumed events by type and result", labelnames=["type", "result"], registry=registry
    )
    unauthenticated = Counter(
        "emc_unauthenticated_events", "Input events whose signature did not prove their agency (EMC_AUTH audit or "
        "enforce), by the agency they name ('unknown' outside the registry) and reason",
        labelnames=["agency", "reason"], registry=registry,
    )
    refilled = Counter(
        "emc_state_refilled_messages", "Batch messages the state stage read from the batch topic itself, because "
        "its consumer skipped them (reason gap) or stopped delivering their partition (reason stall)",
        labelnames=["reason"], registry=registry,
    )
    collector = EmcCollector()
    registry.register(collector)
    bulletins = BulletinCollector()
    registry.register(bulletins)
    return WorkerMetrics(registry, events, collector, bulletins, unauthenticated, refilled)
