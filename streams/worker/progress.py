"""Measuring how far each stage of a worker is behind, on every topic it consumes.

The stall of issue 18 hid behind a lag gauge of 0: only the input topic was measured, by
the ingest stage, while the state stage (the Faust consumer of the batch topic) had
stopped fetching. A consumer that stops fetching also stops learning its partitions' high
watermarks, so the state stage's lag is measured here with a consumer of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.worker.health import PartitionKey

log = logging.getLogger(__name__)

# A high watermark older than this is not trusted (the probe's fetches stopped answering).
FRESH_FOR_S = 10.0


class HighwaterProbe:
    """High watermarks from Fetch responses (right on Tansu, whose ListOffsets can answer low).

    One consumer without a group, assigned the partitions asked about, whose fetches stay at
    each partition's end: every fetch response carries the partition's high watermark, even
    an empty one, so it costs one empty long poll per partition and fetch wait.
    """

    def __init__(self, bootstrap_servers: str, client_id: str, security: Mapping[str, object] | None = None) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._security = dict(security or {})  # SASL/TLS arguments (streams.kafka.security)
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: frozenset[TopicPartition] = frozenset()

    async def highwaters(self, partitions: Iterable[PartitionKey]) -> dict[PartitionKey, int]:
        """The fresh high watermarks among `partitions` (those not yet known are left out)."""
        wanted = frozenset(TopicPartition(topic, partition) for topic, partition in partitions)
        consumer = await self._ensure_started()
        if wanted != self._assigned:
            consumer.assign(list(wanted))
            self._assigned = wanted
            if wanted:
                await consumer.seek_to_end(*wanted)
        if not wanted:
            return {}
        await consumer.getmany(timeout_ms=0)  # drop records fetched since the last round
        now_ms = time.time() * 1000
        found: dict[PartitionKey, int] = {}
        for tp in wanted:
            highwater = consumer.highwater(tp)
            polled_ms = consumer.last_poll_timestamp(tp)
            if highwater is None or polled_ms is None:
                continue
            if await consumer.position(tp) < highwater:
                consumer.seek(tp, highwater)  # stay at the end: only high watermarks are wanted
            if now_ms - polled_ms <= FRESH_FOR_S * 1000:
                found[(tp.topic, tp.partition)] = highwater
        return found

    async def ping(self) -> None:
        """A metadata round trip; raises KafkaError when no broker answers."""
        consumer = await self._ensure_started()
        await consumer.topics()

    async def _ensure_started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers, group_id=None, enable_auto_commit=False,
                max_partition_fetch_bytes=64 * 1024, client_id=self._client_id, **self._security,
            )
            await consumer.start()
            self._consumer = consumer
            self._assigned = frozenset()
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
