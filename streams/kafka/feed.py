"""The workers' side of the small compacted topics (control, procedure catalogue): follow the
whole topic (the CLI's side is streams/kafka/compacted.py).

A plain aiokafka consumer without a consumer group, all partitions assigned by hand, from
the beginning at each start, so that the state is rebuilt from the compacted topic after
any restart and no worker depends on another. The feed folds each message into the latest
valid record of every key (`fold_record`, as the CLI's reader does); subclasses rebuild an
immutable state from those records, which the worker's tick reads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Generic

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError as AIOKafkaError

from streams.kafka.compacted import R, RecordParser, fold_record
from streams.kafka.security import aiokafka_security
from streams.settings import Settings

log = logging.getLogger(__name__)


class CompactedTopicFeed(Generic[R]):
    def __init__(self, settings: Settings, topic: str, name: str, parse: RecordParser[R]) -> None:
        self._settings = settings
        self._topic = topic
        self._name = name
        self._parse = parse
        self._records: dict[str, R] = {}
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        # True once the feed has read the topic up to its end (as it was when the feed got
        # there): before that a worker would publish without the topic's records.
        self.ready = False

    def _rebuild(self) -> None:
        """Rebuild the published state from `_records` (after a batch that changed them)."""
        raise NotImplementedError

    async def run(self) -> None:
        """Follow the topic until cancelled; broker errors are retried with backoff."""
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", client_id=f"{self._settings.app_id}-{self._name}",
                **aiokafka_security(self._settings),
            )
            try:
                await consumer.start()
                tps = await self._assign(consumer)
                delay = 0.5
                await self._follow(consumer, tps)
            except AIOKafkaError as exc:
                log.warning("%s feed: broker error, retrying in %.1f s: %s", self._name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            await consumer.topics()  # refreshes the metadata
            partitions = consumer.partitions_for_topic(self._topic)
            if partitions:
                break
            log.warning("%s feed: topic %s not found yet, retrying", self._name, self._topic)
            await asyncio.sleep(1.0)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in self._positions:  # a reconnect: go on where we were
                consumer.seek(tp, self._positions[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        return tps

    async def _follow(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            changed = False
            for tp, messages in batch.items():
                for message in messages:
                    changed |= fold_record(self._parse, self._records, message.key, message.value, tp.partition,
                                           message.offset, what=self._name)
                if messages:
                    self._positions[tp.partition] = messages[-1].offset + 1
            if changed:
                self._rebuild()
            if not self.ready and await self._caught_up(consumer, tps):
                self.ready = True
                log.info("%s feed caught up (%d records)", self._name, len(self._records))

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is None:
                return False
            if await consumer.position(tp) < max(ends[tp], highwater):
                return False
        return True
