"""Faust's aiokafka transport, with end offsets taken from a fetch, not from ListOffsets.

Faust restores tables by reading each changelog partition up to its "highwater", which it
asks for with ListOffsets(latest). Tansu (the local broker) can answer that with an offset
below what it acknowledged to the producer (the base offset of the last record batch), while
the high watermark in a Fetch response is right. Faust then (a) refuses to start
because RocksDB's persisted offset is "ahead" of the topic, or worse (b) stops restoring a
partition before its last records, so a worker taking the partition over would start from
rows older than the offsets already committed. Taking the maximum of both answers is right
on Apache Kafka, where the two agree, and on Tansu.

It also asks for a shorter fetch wait than Faust's (FETCH_MAX_WAIT_MS below).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.settings import DEFAULT_STATE_FETCH_MAX_WAIT_MS

log = logging.getLogger(__name__)


async def fetch_highwaters(bootstrap_servers: str, listed: Mapping[TP, int], timeout_s: float = 30.0,
                           security: Mapping[str, object] | None = None) -> dict[TP, int]:
    """The high watermark of each partition as a Fetch response reports it (`security`: the
    SASL/TLS arguments of the app's own clients)."""
    if not listed:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=64 * 1024, **(security or {}))
    await consumer.start()
    try:
        by_kafka_tp = {KafkaTopicPartition(tp.topic, tp.partition): tp for tp in listed}
        consumer.assign(list(by_kafka_tp))
        for kafka_tp, tp in by_kafka_tp.items():
            consumer.seek(kafka_tp, max(listed[tp], 0))
        found: dict[TP, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < len(by_kafka_tp) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=1)
            for kafka_tp, tp in by_kafka_tp.items():
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    found[tp] = highwater
                    consumer.pause(kafka_tp)
        return {tp: max(offset, found.get(tp, offset)) for tp, offset in listed.items()}
    finally:
        await consumer.stop()


# Faust asks aiokafka for fetch_max_wait_ms=1500. A Fetch that finds no new record waits on
# Tansu without being woken by new records: Tansu reads the partitions again only after
# sleeping half the remaining wait (all of it below 250 ms). A record produced just after
# such a fetch went out reached the agent ~750 ms later (up to 1.5 s); at 100 ms, ~30 ms.
# Apache Kafka answers a waiting fetch as soon as records arrive; there this only makes an
# idle consumer poll ten times a second.
FETCH_MAX_WAIT_MS = DEFAULT_STATE_FETCH_MAX_WAIT_MS  # EMC_STATE_FETCH_MAX_WAIT_MS changes it


async def stop_quietly(stopping: Awaitable[None], consumer: AIOKafkaConsumer | None) -> None:
    """Await `stopping` (a stop that ends in `consumer.stop()`), the expected cancellation aside.

    aiokafka's `Fetcher.close` cancels its pending fetch tasks and awaits each one. A fetch
    that failed (the broker gone, or going) sleeps its retry backoff without catching the
    cancellation there, so `close` re-raises that CancelledError: out of
    `AIOKafkaConsumer.stop`, out of Faust's consumer-thread shutdown, printed by `threading`
    as an uncaught exception (~100 lines at every SIGTERM with the broker gone). That one is
    expected and ends the stop; a cancellation of the task awaiting here (`cancelling()`)
    still propagates, and nothing else is caught."""
    try:
        await stopping
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.info("Kafka consumer stopped; aiokafka re-raised the cancellation of a fetch retry")
        if consumer is not None:
            await consumer._client.close()  # what `AIOKafkaConsumer.stop` did not reach: its connections


class FetchHighwaterConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        bootstrap = ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker_consumer)
        security = faust_aiokafka.credentials_to_aiokafka_auth(self.app.conf.broker_credentials)
        return await fetch_highwaters(bootstrap, listed, security=security)

    async def on_thread_stop(self) -> None:
        """Faust's stop of its consumer, without the ~100-line traceback at SIGTERM (below)."""
        await stop_quietly(super().on_thread_stop(), self._consumer)


class FetchHighwaterConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> FetchHighwaterConsumerThread:
        return FetchHighwaterConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchHighwaterTransport(faust_aiokafka.Transport):
    Consumer = FetchHighwaterConsumer
    fetch_max_wait_ms = FETCH_MAX_WAIT_MS


def install(app: object, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make `app` use this transport (before the app starts), its consumer fetching with
    `fetch_max_wait_ms` (EMC_STATE_FETCH_MAX_WAIT_MS)."""
    conf = app.conf  # type: ignore[attr-defined]
    app.transport = FetchHighwaterTransport(conf.broker_consumer, app, loop=app.loop)  # type: ignore[attr-defined]
    app.transport.fetch_max_wait_ms = fetch_max_wait_ms  # type: ignore[attr-defined]


# What the rest of the worker needs to know about Faust's consumer, read here so that no
# other module reaches into Faust's internals.


def served_partitions(app: object, topic: str) -> frozenset[int] | None:
    """The partitions of `topic` this worker serves; None while the group is rebalancing or
    tables are being restored (state is not complete yet)."""
    if app.rebalancing or getattr(app, "in_recovery", False) or not app.rebalancing_count:  # type: ignore[attr-defined]
        return None  # (no rebalancing yet: the group has not given this worker anything yet)
    return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)  # type: ignore[attr-defined]


def active_partitions(app: object, topic: str) -> frozenset[int]:
    """The partitions of `topic` the group last gave this worker as active, kept through the
    rebalance that follows until the next assignment arrives (the flow of messages is
    suspended meanwhile), so that a message delivered while Faust resumes is not refused."""
    return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)  # type: ignore[attr-defined]


def generation(app: object) -> int:
    """The consumer group's generation this worker last joined (each rebalance starts a new one)."""
    return app.consumer_generation_id  # type: ignore[attr-defined]


def assigned_partitions(app: object, topic: str) -> frozenset[int]:
    """The partitions of `topic` assigned to Faust's consumer now (empty mid-rebalance)."""
    return frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)  # type: ignore[attr-defined]


def committed_offsets(app: object, topic: str) -> dict[int, int]:
    """The offsets of `topic` that Faust's consumer last committed (or found committed when it
    was assigned the partition), by partition."""
    committed = app.consumer._committed_offset  # type: ignore[attr-defined]
    return {tp.partition: offset for tp, offset in list(committed.items()) if tp.topic == topic and offset is not None}


def changelog_restore_progress(app: object) -> dict[tuple[str, int], tuple[int, int]]:
    """While tables are restored: (offset restored up to, messages left) per changelog partition."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    if not recovery.in_recovery:
        return {}
    offsets = recovery.active_offsets
    progress = {}
    for tp, highwater in list(recovery.active_highwaters.items()):
        offset = offsets.get(tp)
        if highwater is not None and offset is not None:
            progress[(tp.topic, tp.partition)] = (offset, max(0, highwater - offset))
    return progress


def consumer_diagnostics(app: object, topic: str, partition: int) -> dict[str, object]:
    """What Faust's consumer holds for one partition of `topic`, for the log line that reports
    a stalled state stage: enough to tell a paused partition, a stopped flow, a dropped read
    offset, an unacked message or a blocked agent apart."""
    consumer = app.consumer  # type: ignore[attr-defined]
    tp = next((tp for tp in consumer.assignment() if tp.topic == topic and tp.partition == partition), None)
    found: dict[str, object] = {"assigned": tp is not None, "rebalancing": bool(app.rebalancing)}  # type: ignore[attr-defined]
    found["flow_active"] = bool(getattr(consumer, "flow_active", True))
    found["app_flow_control_active"] = bool(app.flow_control.is_active())  # type: ignore[attr-defined]
    found["in_recovery"] = bool(app.tables.recovery.in_recovery)  # type: ignore[attr-defined]
    found["generation"] = getattr(app, "consumer_generation_id", None)
    if tp is None:
        return found
    active = consumer._active_partitions  # type: ignore[attr-defined]
    found["active"] = None if active is None else tp in active
    found["paused"] = tp in consumer._paused_partitions  # type: ignore[attr-defined]
    found["buffered"] = tp in consumer._buffered_partitions  # type: ignore[attr-defined]
    found["read_offset"] = consumer._read_offset.get(tp)  # type: ignore[attr-defined]
    found["committed_offset"] = consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
    acked = consumer._acked.get(tp) or []  # type: ignore[attr-defined]
    found["acked_pending"] = len(acked)
    found["acked_min"] = min(acked) if acked else None
    found["gaps"] = len(consumer._gap.get(tp) or ())  # type: ignore[attr-defined]
    found["unacked_messages"] = sum(1 for m in list(consumer._unacked_messages) if m.tp == tp)  # type: ignore[attr-defined]
    thread = getattr(consumer, "_thread", None)
    kafka = getattr(thread, "_consumer", None)
    if kafka is not None:
        ktp = KafkaTopicPartition(topic, partition)
        found["kafka_assigned"] = ktp in kafka.assignment()
        found["kafka_paused"] = ktp in kafka.paused()
        found["kafka_highwater"] = kafka.highwater(ktp)
        state = kafka._subscription.subscription.assignment.state_value(ktp) if kafka._subscription.subscription else None
        found["kafka_position"] = getattr(state, "_position", None) if state is not None else None
    queues = []
    for channel in list(getattr(app.topics, "_topics", ())):  # type: ignore[attr-defined]
        queue = getattr(channel, "_queue", None)
        if queue is not None and topic in getattr(channel, "topics", ()):
            queues.append(queue.qsize())
    found["topic_queue_sizes"] = queues
    return found
