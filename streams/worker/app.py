"""The composition root of a worker: the Faust app, its tables and agent, and the adapters.

Nothing connects at import time; `build_worker(settings)` wires the parts and
`run_worker(settings)` runs them until stopped.

Shape of one worker:

    input topic --(IngestStage: validate, dead-letter, batch by agency)--> batch topic
    batch topic --(Faust agent, one batch per message)--> StateApplier on 4 RocksDB tables
    timer --> Redis snapshots (SnapshotPublisher) + the metrics view (EmcCollector)

Table store: RocksDB (`rocksdb://`, driver rocksdict). Every dossier ever seen is kept
because a correction may arrive years later; 10 million dossiers of ~1 KiB do not fit the
memory store's full-changelog replay at start, while RocksDB keeps them on disk, restarts
from its persisted changelog offsets, and reads only the rows a batch touches.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faust
from faust.types import ProducerT
from mode.utils.futures import stampede
from prometheus_client import CollectorRegistry, start_http_server

from streams.domain.control import agency_control_fields, current_agency_targets
from streams.domain.periods import WINDOWS, current_periods, today_local
from streams.domain.registry import Registry
from streams.domain.snapshot import agency_status
from streams.domain.targets import block_targets
from streams.kafka.control import ControlFeed, ControlPublisher
from streams.reports.bulletins import BULLETIN_REFRESH_S, BulletinWatch
from streams.settings import Settings
from streams.sinks.metrics import AgencyView, MetricsView, WorkerMetrics, create_metrics
from streams.sinks.redis_rankings import RankingPublisher
from streams.sinks.redis_snapshots import SnapshotPublisher, connect
from streams.worker import faust_transport
from streams.worker.changelog import ChangelogWriter, RowWriter
from streams.worker.codec import decode_batch
from streams.worker.ingest import DeadLetter, IngestStage, state_partition_for
from streams.worker.state import (
    BatchOutcome,
    StateApplier,
    StateStores,
    read_agency_row,
    read_counter_row,
    split_counter_key,
)

log = logging.getLogger(__name__)


@dataclass
class Worker:
    settings: Settings
    registry: Registry
    app: faust.App
    stores: StateStores
    metrics: WorkerMetrics
    ingest: IngestStage
    publisher: SnapshotPublisher | None = None
    rankings: RankingPublisher | None = None  # the leader's ranking lists
    owned_partitions: frozenset[int] = frozenset()
    in_sync: bool = False
    control: ControlFeed | None = None  # targets and maintenance, from the whole control topic
    control_publisher: ControlPublisher | None = None
    _agency_partition: dict[str, int] = field(default_factory=dict)

    def owned_agencies(self) -> list[str]:
        return [code for code, p in self._agency_partition.items() if p in self.owned_partitions]

    @property
    def is_leader(self) -> bool:
        return 0 in self.owned_partitions


class _FaustApp(faust.App):
    """A Faust app whose sends do not each yield to the event loop three times.

    Faust's producer buffer sends its records (every table changelog record) one at a time
    through `Topic.publish_message`, which first awaits `app.maybe_start_producer()`. That
    method is wrapped in mode's `@stampede`, whose wrapper awaits `asyncio.sleep(0)` three
    times per call, even when the producer runs already. So each record waited for three
    turns of a busy event loop (~1 ms): the worker sent ~1,000 changelog records/s, i.e.
    150-250 events/s of a 500 events/s trickle (~7 rows per event in batches of ~25), and the
    agent stalled in `wait_until_ebb` ("producer buffer full").
    Once the producer has started there is no stampede to protect from; until then (and in
    a transaction) this is Faust's method, under its stampede.
    """

    _running_producer: ProducerT | None = None

    async def maybe_start_producer(self) -> ProducerT:  # type: ignore[override]
        producer = self._running_producer
        if producer is not None and producer is self._producer and not producer.should_stop:  # type: ignore[attr-defined]
            return producer
        producer = await self._start_producer()
        if not self.in_transaction:
            self._running_producer = producer
        return producer

    @stampede
    async def _start_producer(self) -> ProducerT:
        # Faust's method unwrapped, under a stampede of another name: `stampede` caches its
        # wrapper in the instance under the method's name, which would hide the override.
        return await faust.App.maybe_start_producer.__wrapped__(self)


# Faust opens one RocksDB per table and partition (16 with 4 partitions) with 64 MiB write
# buffers, three of them, and a 2 GiB block cache each: a worker loading a million dossiers
# grew to 4 GiB. Rows are small and written in batches; these keep it bounded.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 32 * 1024 * 1024,
}


def _faust_app(settings: Settings) -> faust.App:
    return _FaustApp(
        settings.app_id,
        broker=settings.broker,
        store="rocksdb://",
        datadir=str(Path(settings.data_dir) / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        producer_acks=-1,
        # Changelog rows go out as one producer batch per partition and message (streams.worker.changelog);
        # at Faust's 16 KiB a message's ~1 MB of dossier rows took dozens of batches.
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        # Tansu takes long to settle a fresh group; short session timeouts let survivors
        # take over a dead member's partitions quickly.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        stream_wait_empty=False,
        autodiscover=False,
        processing_guarantee="at_least_once",
    )


def build_worker(settings: Settings, registry: Registry | None = None, metrics_registry: CollectorRegistry | None = None) -> Worker:
    registry = registry or Registry.load()
    (Path(settings.data_dir) / "faust").mkdir(parents=True, exist_ok=True)
    app = _faust_app(settings)
    faust_transport.install(app)
    tables = {
        name: app.Table(name, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                        options=dict(ROCKSDB_OPTIONS))
        for name in ("event-index", "dossiers", "counters", "agencies")
    }
    changelog = ChangelogWriter(app)
    stores = StateStores(
        event_index=RowWriter(tables["event-index"], changelog),
        dossiers=RowWriter(tables["dossiers"], changelog),
        counters=RowWriter(tables["counters"], changelog),
        agencies=RowWriter(tables["agencies"], changelog),
    )
    metrics = create_metrics(metrics_registry or CollectorRegistry())

    def count_dead_letter(letter: DeadLetter) -> None:
        metrics.events.labels(type=letter.event_type, result="dead_letter").inc()
        log.info("dead letter", extra={"reason": letter.reason, "detail": letter.detail, "partition": letter.partition, "offset": letter.offset})

    worker = Worker(settings, registry, app, stores, metrics, IngestStage(settings, registry, count_dead_letter))
    worker._agency_partition = {a.code: state_partition_for(a.code, settings.partitions) for a in registry}
    applier = StateApplier(stores)
    batch_topic = app.topic(settings.batch_topic, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    @app.agent(batch_topic, name="apply-batches")
    async def apply_batches(stream: faust.StreamT) -> None:
        async for payload in stream:
            outcome = applier.apply_batch(decode_batch(payload))
            await changelog.flush()  # the message's rows are in the changelog before it is acked
            _record(worker, outcome)

    @app.task
    async def run_ingest() -> None:
        await worker.ingest.run()

    control_feed = worker.control = ControlFeed(settings, registry)

    @app.task
    async def run_control_feed() -> None:
        worker.control_publisher = ControlPublisher(connect(settings), settings.redis_prefix)
        await control_feed.run()

    @app.task
    async def run_snapshots() -> None:
        worker.publisher = SnapshotPublisher(settings, registry, connect(settings))
        while True:
            await asyncio.sleep(settings.snapshot_interval_s)
            try:
                await _tick(worker)
            except Exception:  # noqa: BLE001 - a failed tick is logged and retried next tick
                log.exception("snapshot tick failed")

    @app.task
    async def run_rankings() -> None:
        # Its own loop, so the leader's ranking rebuilds never hold back its snapshots.
        worker.rankings = RankingPublisher(settings.redis_prefix, registry, connect(settings))
        bulletins = BulletinWatch(connect(settings), registry, settings.redis_prefix)  # the bulletin gauges
        bulletins_due = 0.0
        while True:
            await asyncio.sleep(settings.snapshot_interval_s)
            if not worker.is_leader or not worker.in_sync:
                continue
            now = datetime.now(timezone.utc)
            try:
                await worker.rankings.publish(current_periods(now).values(), today_local(now))
                if time.monotonic() >= bulletins_due:
                    bulletins_due = time.monotonic() + BULLETIN_REFRESH_S
                    worker.metrics.bulletins.update(await bulletins.refresh())
            except Exception:  # noqa: BLE001 - a failed rebuild is logged and retried next round
                log.exception("rankings rebuild failed")

    return worker


def _record(worker: Worker, outcome: BatchOutcome) -> None:
    for (event_type, result), n in outcome.results.items():
        worker.metrics.events.labels(type=event_type, result=result).inc(n)
    if worker.publisher is not None:
        worker.publisher.mark_dirty(outcome.dirty_counters)
    else:  # the timer has not started yet: resync on its first tick covers these rows
        worker.in_sync = False


def _active_partitions(worker: Worker) -> frozenset[int] | None:
    app = worker.app
    if app.rebalancing or getattr(app, "in_recovery", False):
        return None
    topic = worker.settings.batch_topic
    return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


async def _tick(worker: Worker) -> None:
    publisher = worker.publisher
    assert publisher is not None
    owned = _active_partitions(worker)
    if owned is None:
        return  # rebalancing or restoring tables: state is not complete yet
    if worker.control is None or not worker.control.ready:
        return  # the control topic (targets, maintenance windows) is not read to its end yet
    control = worker.control.state
    if owned != worker.owned_partitions or not worker.in_sync:
        # New partitions (or a restart): everything they hold may be missing from Redis,
        # e.g. rows written just before a crash. Re-publish all of their rows.
        worker.owned_partitions = owned
        owned_agencies = set(worker.owned_agencies())
        rows = [split_counter_key(k) for k in worker.stores.counters.keys()]  # type: ignore[attr-defined]
        publisher.mark_dirty(pair for pair in rows if pair[0] in owned_agencies)
        worker.in_sync = True
        log.info("owning state partitions %s (%d agencies)", sorted(owned), len(owned_agencies))
    publisher.forget_dirty_except(set(worker.owned_agencies()))

    now = datetime.now(timezone.utc)
    now_us = int(now.timestamp() * 1_000_000)
    periods = current_periods(now)
    today = today_local(now)
    views: list[AgencyView] = []
    docs: dict[str, dict] = {}
    for code in worker.owned_agencies():
        agency = worker.registry.get(code)
        row = read_agency_row(worker.stores.agencies, code)
        in_maintenance = control.maintenance_at(code, now_us) is not None
        status = agency_status(row.last_event_us, row.last_heartbeat_us, now_us, worker.settings.silent_after_s, in_maintenance)
        docs[code] = publisher.agency_doc(code, row.last_event_us, row.last_heartbeat_us, status)
        docs[code].update(agency_control_fields(control, code, now_us, periods["month"]))
        if agency is None or not agency.is_valid_on(today):
            continue
        counts = {w: read_counter_row(worker.stores.counters, code, periods[w]).counts for w in WINDOWS}
        views.append(AgencyView(code, agency.block, agency.name, status, in_maintenance, row.last_event_us, row.last_heartbeat_us, counts))

    def read_counts(agency: str, period: str) -> dict[str, int]:
        return read_counter_row(worker.stores.counters, agency, period).snapshot_fields()

    await publisher.flush(read_counts, docs, list(periods.values()) if worker.is_leader else None)
    if worker.control_publisher is not None:  # targets and maintenance windows, by the leader
        await worker.control_publisher.sync(control, worker.is_leader)

    block_counts = {}
    targets = {}
    if worker.is_leader:
        for window, period in periods.items():
            for block in ("ministry", "province", "national"):
                counts = publisher.block_counts.get((block, period))
                if counts is not None:
                    block_counts[(block, window)] = counts
        targets = {(scope, window): value for scope, value in block_targets(today.year).items() for window in WINDOWS}
    worker.metrics.collector.view = MetricsView(
        agencies=tuple(views),
        block_counts_by_window=block_counts,
        targets={**targets, **current_agency_targets(control, (view.code for view in views), periods)},
        input_lag={(worker.settings.input_topic, p): lag for p, lag in worker.ingest.stats.lag.items()},
        worker=worker.settings.worker_name or socket.gethostname(),
    )


class _QuietFaustWorker(faust.Worker):
    """A Faust worker without the terminal spinner.

    Faust's spinner sets the root logger to DEBUG (filtering in its handler), so every
    `log.debug` in aiokafka and Faust built a LogRecord and spun the spinner: under load that
    cost about a sixth of the worker's time. Without it the root level stays as configured.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM."""
    from streams.kafka.topics import ensure_topics
    from streams.logs import configure, logging_config

    configure(settings.log_level)
    ensure_topics(settings)
    worker = build_worker(settings)
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=worker.metrics.registry)
    log.warning("worker started", extra={"metrics_port": settings.metrics_port, "broker": settings.broker})
    _QuietFaustWorker(
        worker.app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level),
        quiet=True,
    ).execute_from_commandline()
