"""Adapters of the agency-control topic (`emc.agency-control.v1`, compacted).

- `send_control`: the CLI's side, a kafka-python producer that waits for the broker's ack.
- `read_control_state`: the CLI's reader (`emc targets list`): the whole topic, once.
- `ControlFeed`: the worker's side. Every worker reads the *whole* topic (it is small, see
  streams/kafka/feed.py). The latest record of each key is kept in memory and published as
  an immutable `ControlState` that `_tick` reads.
- `ControlPublisher`: the leader's writer of the control state to Redis:
  hash `{prefix}targets:{period}`, field agency code -> ratio as a decimal string, and the
  set `{prefix}target-periods` of the periods that have such a hash;
  hash `{prefix}maintenance-windows`, field agency code -> JSON array of its declared windows
  (`from`, `until`, `reason`, `declared_at`; ended ones too), read by the rankings and
  `emc report`. When windows change, the periods they touch go to `{prefix}rankings:dirty` so
  that the leader rebuilds those periods' lists of units in maintenance.
"""

from __future__ import annotations

import logging
from functools import partial

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.domain.control import (
    ControlRecord,
    ControlState,
    maintenance_from_history,
    parse_control_message,
    periods_touched,
)
from streams.domain.registry import Registry
from streams.kafka.compacted import read_latest_records, send_records
from streams.kafka.feed import CompactedTopicFeed
from streams.settings import Settings
from streams.sinks.keys import RedisKeys, as_text
from streams.sinks.redis_outage import RedisOutageLog

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
    return send_records(settings, settings.control_topic, messages, what="control record",
                        client_id=f"{settings.app_id}-control-cli", timeout_s=timeout_s)


def read_control_state(settings: Settings, registry: Registry, timeout_s: float = 30.0) -> ControlState:
    """The control state as the whole topic gives it now (invalid records are skipped, logged)."""
    records = read_latest_records(settings, settings.control_topic, partial(parse_control_message, registry),
                                  what="control", client_id=f"{settings.app_id}-control-cli", timeout_s=timeout_s)
    return ControlState.of(records.values())


# -- worker side ---------------------------------------------------------------------------

class ControlFeed(CompactedTopicFeed[ControlRecord]):
    """The latest control state, kept up to date from the whole control topic."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        super().__init__(settings, settings.control_topic, "control", partial(parse_control_message, registry))
        self.state = ControlState()

    def _rebuild(self) -> None:
        self.state = ControlState.of(self._records.values())
        log.info("control state: %d targets, %d maintenance windows",
                 len(self.state.targets), self.state.window_count)

class ControlPublisher:
    """Writes the targets and maintenance windows of the control state to Redis (leader only)."""

    def __init__(self, client: aioredis.Redis, prefix: str, outage: RedisOutageLog | None = None) -> None:
        self._client = client
        self.keys = RedisKeys(prefix)
        self._written: ControlState | None = None
        self._outage = outage or RedisOutageLog()

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
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._outage.failed("agency targets", exc)
        except RedisError as exc:
            log.warning("could not write the agency targets to Redis, will retry: %s", exc)


def decimal_text(ratio: float) -> str:
    """A ratio as a plain decimal string, never in exponent form: 0.85 -> "0.85", 1.0 -> "1"."""
    return f"{ratio:.10f}".rstrip("0").rstrip(".")
