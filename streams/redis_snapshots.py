"""Redis snapshots (contract section 5), written in batches from a timer.

Each worker writes the hashes of the agencies it owns, from its table state, whole. The
leader (the owner of state partition 0) then sums agency hashes into block and national
hashes and rebuilds the rank zsets, for every period some worker marked dirty. Nothing is
lost while Redis is away: dirty marks are only cleared after a successful MULTI/EXEC, and
each write is recomputed from the tables, so catching up is just the next flush.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from streams.domain.registry import Registry
from streams.domain.snapshot import agency_hash, counts_from_hash, has_any_count, rank_scores, sum_counts
from streams.settings import Settings

log = logging.getLogger(__name__)

# HDEL the period's mark only if it still has the value the leader read before aggregating.
_CLEAR_MARK_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

CountsReader = Callable[[str, str], dict[str, int]]  # (agency, period) -> counts


def _rfc3339(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def connect(settings: Settings) -> aioredis.Redis:
    """A client that retries each command with exponential backoff on connection loss."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=10,
    )


class RedisKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def agency(self, code: str, period: str) -> str:
        return f"{self.prefix}agency:{code}:{period}"

    def block(self, block: str, period: str) -> str:
        return f"{self.prefix}block:{block}:{period}"

    def rank(self, block: str, period: str) -> str:
        return f"{self.prefix}rank:{block}:{period}"

    @property
    def agencies(self) -> str:
        return f"{self.prefix}agencies"

    @property
    def dirty_periods(self) -> str:
        # Internal hash: period -> number of times marked; the leader recomputes block and
        # rank keys of marked periods.
        return f"{self.prefix}internal:dirty-periods"


class SnapshotPublisher:
    def __init__(self, settings: Settings, registry: Registry, client: aioredis.Redis) -> None:
        self._settings = settings
        self._registry = registry
        self._client = client
        self.keys = RedisKeys(settings.redis_prefix)
        self._dirty: set[tuple[str, str]] = set()
        self._failures = 0
        self._next_attempt = 0.0
        self._clear_mark = client.register_script(_CLEAR_MARK_IF_UNCHANGED)
        self.block_counts: dict[tuple[str, str], dict[str, int]] = {}  # (block, period) -> counts

    def mark_dirty(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._dirty.update(pairs)

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(
        self,
        read_counts: CountsReader,
        agency_docs: Mapping[str, dict],
        leader_periods: Iterable[str] | None,
    ) -> bool:
        """Write what is dirty; returns False (and keeps it dirty) when Redis is unreachable."""
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        dirty, self._dirty = self._dirty, set()
        try:
            await self._write_agencies(dirty, read_counts, agency_docs)
            if leader_periods is not None:
                await self._aggregate(set(leader_periods))
        except (RedisError, OSError) as exc:
            self._dirty |= dirty
            self._failures += 1
            delay = min(0.5 * 2 ** (self._failures - 1), 30.0)
            self._next_attempt = now + delay
            log.warning(
                "redis unreachable, snapshots kept for retry: %s",
                exc,
                extra={"event": "redis_retry", "attempt": self._failures, "retry_in_s": delay, "pending": len(self._dirty)},
            )
            return False
        if self._failures:
            log.warning("redis reachable again after %d failed attempts; snapshots caught up", self._failures)
        self._failures = 0
        return True

    async def _write_agencies(
        self, dirty: set[tuple[str, str]], read_counts: CountsReader, agency_docs: Mapping[str, dict]
    ) -> None:
        updated_at = datetime.now(timezone.utc)
        ordered = sorted(dirty)
        for start in range(0, max(len(ordered), 1), 500):
            chunk = ordered[start : start + 500]
            async with self._client.pipeline(transaction=True) as pipe:
                periods: set[str] = set()
                for agency, period in chunk:
                    key = self.keys.agency(agency, period)
                    counts = read_counts(agency, period)
                    pipe.delete(key)
                    if has_any_count(counts):
                        pipe.hset(key, mapping=agency_hash(counts, updated_at))
                    periods.add(period)
                for period in periods:
                    pipe.hincrby(self.keys.dirty_periods, period, 1)
                if start == 0 and agency_docs:
                    pipe.hset(self.keys.agencies, mapping={code: orjson.dumps(doc) for code, doc in agency_docs.items()})
                await pipe.execute()

    async def _aggregate(self, always: set[str]) -> None:
        """Leader only: block/national hashes and rank zsets for dirty and current periods."""
        # Marks stay in Redis until their period is aggregated, and are cleared only when no
        # worker marked the period again meanwhile: a leader that dies mid-way loses nothing.
        marks = {p.decode(): v for p, v in (await self._client.hgetall(self.keys.dirty_periods)).items()}
        periods = sorted(set(marks) | always)
        codes = [agency.code for agency in self._registry]
        updated_at = datetime.now(timezone.utc)
        for period in periods:
            async with self._client.pipeline(transaction=False) as pipe:
                for code in codes:
                    pipe.hgetall(self.keys.agency(code, period))
                hashes = await pipe.execute()
            by_block: dict[str, dict[str, dict[str, int]]] = {"ministry": {}, "province": {}}
            for code, fields in zip(codes, hashes):
                if fields:
                    block = self._registry.get(code).block  # type: ignore[union-attr]
                    by_block[block][code] = counts_from_hash(fields)
            async with self._client.pipeline(transaction=True) as pipe:
                national = sum_counts(c for members in by_block.values() for c in members.values())
                for block, members in (*by_block.items(), ("national", None)):
                    counts = national if members is None else sum_counts(members.values())
                    self.block_counts[(block, period)] = counts
                    pipe.delete(self.keys.block(block, period))
                    if has_any_count(counts):
                        pipe.hset(self.keys.block(block, period), mapping=agency_hash(counts, updated_at))
                    if members is not None:
                        pipe.delete(self.keys.rank(block, period))
                        scores = rank_scores(members)
                        if scores:
                            pipe.zadd(self.keys.rank(block, period), scores)
                await pipe.execute()
            if period in marks:
                await self._clear_mark(keys=[self.keys.dirty_periods], args=[period, marks[period]])

    def agency_doc(
        self, code: str, last_event_us: int | None, last_heartbeat_us: int | None, status: str
    ) -> dict:
        agency = self._registry.get(code)
        return {
            "name": agency.name if agency else code,
            "block": agency.block if agency else None,
            "last_event_at": _rfc3339(last_event_us),
            "last_heartbeat_at": _rfc3339(last_heartbeat_us),
            "status": status,
        }
