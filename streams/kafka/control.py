"""Adapters of the agency-control topic (`emc.agency-control.v1`, compacted).

- `send_control`: the CLI's side, a kafka-python producer that waits for the broker's ack.
- `read_control_state`: the CLI's reader (`emc targets list`): the whole topic, once.
- `ControlFeed`: the worker's side. Every worker reads the *whole* topic (it is small): a
  plain aiokafka consumer without a consumer group, all partitions assigned by hand, from
  the beginning at each start, so that the state is rebuilt from the compacted topic after
  any restart and no worker depends on another. The latest record of each key is kept in
  memory and published as an immutable `ControlState` that `_tick` reads.
- `ControlPublisher`: the leader's writer of the control state to Redis:
  hash `{prefix}targets:{period}`, field agency code -> ratio as a decimal string, and the
  set `{prefix}target-periods` of the periods that have such a hash;
  hash `{prefix}maintenance-windows`, field agency code -> JSON array of its declared windows
  (`from`, `until`, `reason`, `declared_at`; ended ones too), read by the rankings and
  `emc report`. When windows change, the periods they touch go to `{prefix}rankings:dirty` so
  that the leader rebuilds those periods' lists of units in maintenance.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError as AIOKafkaError
from redis.exceptions import RedisError

from streams.domain.control import (
    ControlRecord,
    ControlState,
    apply_message,
    maintenance_from_history,
    parse_control_message,
    periods_touched,
)
from streams.domain.registry import Registry
from streams.errors import InvalidControlRecord
from streams.kafka.compacted import produce_acked, read_whole_topic
from streams.kafka.security import aiokafka_security
from streams.settings import Settings
from streams.sinks.keys import RedisKeys, as_text

log = logging.getLogger(__name__)


# -- CLI side ------------------------------------------------------------------------------

def send_control(settings: Settings, key: bytes, value: bytes | None, timeout_s: float = 30.0) -> tuple[int, int]:
    """Produce one control record (value None: a tombstone) and wait for the ack.

    Returns (partition, offset). Creates the compacted topic first when it is missing, so
    that a broker's auto-creation never makes it a plain (deleting) topic.
    """
    return send_control_messages(settings, [(key, value)], timeout_s)[-1]


def send_control_messages(settings: Settings, messages: list[tuple[bytes, bytes | None]],
                          timeout_s: float = 30.0) -> list[tuple[int, int]]:
    """Produce control records in order (one key, one partition: compaction keeps the last)
    and wait for every ack; returns each one's (partition, offset)."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={settings.control_topic})
    return produce_acked(settings, settings.control_topic, messages, what="control record",
                         client_id=f"{settings.app_id}-control-cli", timeout_s=timeout_s)


def read_control_state(settings: Settings, registry: Registry, timeout_s: float = 30.0) -> ControlState:
    """The control state as the whole topic gives it now (invalid records are skipped, logged)."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={settings.control_topic})
    records: dict[str, ControlRecord] = {}
    for partition, offset, key, value in read_whole_topic(settings, settings.control_topic,
                                                          client_id=f"{settings.app_id}-control-cli", timeout_s=timeout_s):
        _fold(registry, records, key, value, partition, offset)
    return ControlState.of(records.values())


def _fold(registry: Registry, records: dict[str, ControlRecord], key: bytes | None, value: bytes | None,
          partition: int, offset: int) -> bool:
    try:
        text_key, record = parse_control_message(registry, key, value)
    except InvalidControlRecord as exc:
        log.warning("skipping an invalid control record at partition %d offset %d: %s", partition, offset, exc,
                    extra={"event": "invalid_control_record", "partition": partition, "offset": offset})
        return False
    apply_message(records, text_key, record)
    return True


# -- worker side ---------------------------------------------------------------------------

class ControlFeed:
    """The latest control state, kept up to date from the whole control topic."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self._registry = registry
        self._records: dict[str, ControlRecord] = {}
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self.state = ControlState()
        # True once the feed has read the topic up to its end (as it was when the feed got
        # there): before that a worker would publish statuses without the declared windows.
        self.ready = False

    async def run(self) -> None:
        """Follow the topic until cancelled; broker errors are retried with backoff."""
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", client_id=f"{self._settings.app_id}-control",
                **aiokafka_security(self._settings),
            )
            try:
                await consumer.start()
                tps = await self._assign(consumer)
                delay = 0.5
                await self._follow(consumer, tps)
            except AIOKafkaError as exc:
                log.warning("control feed: broker error, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self._settings.control_topic
        while True:
            await consumer.topics()  # refreshes the metadata
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            log.warning("control feed: topic %s not found yet, retrying", topic)
            await asyncio.sleep(1.0)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
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
                    changed |= _fold(self._registry, self._records, message.key, message.value, tp.partition, message.offset)
                if messages:
                    self._positions[tp.partition] = messages[-1].offset + 1
            if changed:
                self.state = ControlState.of(self._records.values())
                log.info("control state: %d targets, %d maintenance windows",
                         len(self.state.targets), self.state.window_count)
            if not self.ready and await self._caught_up(consumer, tps):
                self.ready = True
                log.info("control feed caught up (%d records)", len(self._records))

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


class ControlPublisher:
    """Writes the targets and maintenance windows of the control state to Redis (leader only)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self.keys = RedisKeys(prefix)
        self._written: ControlState | None = None

    def forget(self) -> None:
        """Write again on the next `publish` (e.g. after becoming leader again)."""
        self._written = None

    async def publish(self, state: ControlState) -> None:
        if state is self._written:
            return
        by_period = state.targets_by_period()
        keys = self.keys
        known = {as_text(p) for p in await self._client.smembers(keys.target_periods)}
        history = state.history_json()
        written = {as_text(code): orjson.loads(raw) for code, raw in (await self._client.hgetall(keys.maintenance_windows)).items()}
        changed = {code for code in written.keys() | history.keys() if written.get(code) != history.get(code)}
        # The periods of every window that came or went (both sides of a change), as the
        # leader's rankings must rebuild their lists of units in maintenance.
        touched = periods_touched(
            [w for code in changed for w in state.maintenance.get(code, ())]
            + [maintenance_from_history(code, doc) for code in changed for doc in written.get(code, ())])
        async with self._client.pipeline(transaction=True) as pipe:
            for period in sorted(known | by_period.keys()):
                pipe.delete(keys.targets(period))
                if period in by_period:
                    pipe.hset(keys.targets(period), mapping={a: decimal_text(r) for a, r in by_period[period].items()})
            pipe.delete(keys.target_periods)
            if by_period:
                pipe.sadd(keys.target_periods, *by_period)
            for code in sorted(changed):
                if code in history:
                    pipe.hset(keys.maintenance_windows, code, orjson.dumps(history[code]))
                else:
                    pipe.hdel(keys.maintenance_windows, code)
            if touched:
                pipe.sadd(keys.rankings_dirty, *sorted(touched))
            await pipe.execute()
        self._written = state

    async def sync(self, state: ControlState, is_leader: bool) -> None:
        """Publish when leader; a Redis error is logged and retried on the next call."""
        if not is_leader:
            self.forget()
            return
        try:
            await self.publish(state)
        except RedisError as exc:
            log.warning("could not write the agency targets to Redis, will retry: %s", exc)


def decimal_text(ratio: float) -> str:
    """A ratio as a plain decimal string, never in exponent form: 0.85 -> "0.85", 1.0 -> "1"."""
    return f"{ratio:.10f}".rstrip("0").rstrip(".")
