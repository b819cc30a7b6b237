"""Redis snapshots (contract section 5), written in batches from a timer.

Each worker writes the hashes of the agencies it owns, from its table state, whole. One Lua
script per (agency, period) does the rest atomically inside Redis: it compares the new counts
with the stored hash, applies the difference to the block and national hashes, and updates
the agency's place in the rank zset. Writing the same counts twice changes nothing, so the
block sums stay exact through replays, restarts and any number of workers, with no leader
re-reading every agency. Nothing is lost while Redis is away: dirty rows are only forgotten
after a successful write, and each write is recomputed from the tables.

A Redis that comes back empty (a failover to an empty replica, a FLUSHALL) is noticed by its
instance marker: a random token that the first writer sets and every worker remembers. A
missing or different token means every key may be gone, and `redis_replaced()` tells the
worker to publish all its rows again from its tables.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from streams.domain.catalogue import Catalogue, catalogue_only_periods, in_force_pairs
from streams.domain.finality import EVENT_COUNT_FIELDS
from streams.domain.indicators import INDICATORS
from streams.domain.instants import now_rfc3339, rfc3339_utc, utc_datetime_of_us
from streams.domain.registry import NATIONAL, SCOPES, Registry
from streams.domain.snapshot import SNAPSHOT_COUNT_FIELDS, counts_from_hash
from streams.settings import Settings
from streams.sinks.keys import RedisKeys, as_text
from streams.sinks.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

CountsReader = Callable[[str, str], dict[str, int]]  # (agency, period) -> counts and event counts

# KEYS: agency hash, block hash, national hash, block rank zset.
# ARGV: agency code, updated_at, period, then one string of comma-separated integers: one per
# SNAPSHOT_COUNT_FIELDS (the counts and the procedure figures), then one per
# EVENT_COUNT_FIELDS (streams/domain/finality.py), in that order. (One argument, not ~45:
# redis-py encodes and frames each argument in Python, which was a third of a tick's time.)
# Event counts are summed into the block hashes like the counts, but change no figure: they
# neither set `last_changed_at` nor mark the period's rankings dirty.
# Counts are integers well below 2^53 (Lua numbers are doubles): a year of national fees in
# đồng is about 10^13.
_WRITE_AGENCY_SNAPSHOT = """
local fields = {%(fields)s}
local n = #fields
local efields = {%(efields)s}
local m = #efields
local RESOLVED, FULL = %(resolved)d, %(full)d
local agency, updated_at, period = ARGV[1], ARGV[2], ARGV[3]
local given = {}
for value in string.gmatch(ARGV[4], '[^,]+') do given[#given + 1] = tonumber(value) end
-- Secondary indicators (streams/domain/indicators.py): {field, numerator, {denominator...}},
-- recomputed from the hash's own counts, so a block's are exact whatever the worker count.
local INDICATORS = {%(indicators)s}
local function set_indicators(key, values)
  for _, ind in ipairs(INDICATORS) do
    local den = 0
    for _, j in ipairs(ind[3]) do den = den + (tonumber(values[j]) or 0) end
    if den > 0 then
      redis.call('HSET', key, ind[1], string.format('%%.6f', (tonumber(values[ind[2]]) or 0) / den))
    else
      redis.call('HDEL', key, ind[1])
    end
  end
end
local old = redis.call('HMGET', KEYS[1], unpack(fields))
local new, any = {}, false
for i = 1, n do
  new[i] = given[i]
  if new[i] ~= 0 then any = true end
end
local changed = false
for i = 1, n do
  local diff = new[i] - (tonumber(old[i]) or 0)
  if diff ~= 0 then
    changed = true
    redis.call('HINCRBY', KEYS[2], fields[i], diff)
    redis.call('HINCRBY', KEYS[3], fields[i], diff)
  end
end
-- An agency hash without any count is deleted, so its event counts count as 0 in the blocks.
local eold = redis.call('HMGET', KEYS[1], unpack(efields))
local enew = {}
for j = 1, m do
  enew[j] = any and given[n + j] or 0
  local diff = enew[j] - (tonumber(eold[j]) or 0)
  if diff ~= 0 then
    redis.call('HINCRBY', KEYS[2], efields[j], diff)
    redis.call('HINCRBY', KEYS[3], efields[j], diff)
  end
end
if any then
  local args = {}
  for i = 1, n do args[#args + 1] = fields[i]; args[#args + 1] = new[i] end
  for j = 1, m do args[#args + 1] = efields[j]; args[#args + 1] = enew[j] end
  args[#args + 1] = 'updated_at'; args[#args + 1] = updated_at
  if changed then args[#args + 1] = 'last_changed_at'; args[#args + 1] = updated_at end
  redis.call('HSET', KEYS[1], unpack(args))
  if new[RESOLVED] > 0 then
    local rate = new[FULL] / new[RESOLVED]
    redis.call('HSET', KEYS[1], 'full_online_rate', string.format('%%.6f', rate))
    redis.call('ZADD', KEYS[4], string.format('%%.17g', rate), agency)
  else
    redis.call('HDEL', KEYS[1], 'full_online_rate')
    redis.call('ZREM', KEYS[4], agency)
  end
  set_indicators(KEYS[1], new)
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], agency)
end
if changed then
  for _, key in ipairs({KEYS[2], KEYS[3]}) do
    local values = redis.call('HMGET', key, unpack(fields))
    local nonzero = false
    for i = 1, n do if (tonumber(values[i]) or 0) ~= 0 then nonzero = true end end
    if nonzero then
      for i = 1, n do if not values[i] then redis.call('HSET', key, fields[i], 0) end end
      redis.call('HSET', key, 'updated_at', updated_at, 'last_changed_at', updated_at)
      local resolved = tonumber(values[RESOLVED]) or 0
      if resolved > 0 then
        redis.call('HSET', key, 'full_online_rate', string.format('%%.6f', (tonumber(values[FULL]) or 0) / resolved))
      else
        redis.call('HDEL', key, 'full_online_rate')
      end
      set_indicators(key, values)
    else
      redis.call('DEL', key)
    end
  end
end
-- KEYS[5] (optional): the set of periods whose rankings must be rebuilt (streams/sinks/redis_rankings.py).
if changed and KEYS[5] then redis.call('SADD', KEYS[5], period) end
return changed and 1 or 0
""" % {
    "fields": ", ".join(f"'{name}'" for name in SNAPSHOT_COUNT_FIELDS),
    "efields": ", ".join(f"'{name}'" for name in EVENT_COUNT_FIELDS),
    "resolved": SNAPSHOT_COUNT_FIELDS.index("resolved") + 1,
    "full": SNAPSHOT_COUNT_FIELDS.index("full_online") + 1,
    "indicators": ", ".join(
        "{'%s', %d, {%s}}" % (i.field, SNAPSHOT_COUNT_FIELDS.index(i.numerator) + 1,
                              ", ".join(str(SNAPSHOT_COUNT_FIELDS.index(d) + 1) for d in i.denominator))
        for i in INDICATORS
    ),
}


WRITTEN_FIELDS: tuple[str, ...] = (*SNAPSHOT_COUNT_FIELDS, *EVENT_COUNT_FIELDS)  # ARGV[4]'s order


def _rfc3339(us: int | None) -> str | None:
    return None if us is None else rfc3339_utc(utc_datetime_of_us(us))


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


class SnapshotPublisher:
    def __init__(self, settings: Settings, registry: Registry, client: aioredis.Redis,
                 outage: RedisOutageLog | None = None) -> None:
        self._registry = registry
        self._client = client
        self.outage = outage or RedisOutageLog()
        self.keys = RedisKeys(settings.redis_prefix)
        self._dirty: set[tuple[str, str]] = set()
        self._failures = 0
        self._next_attempt = 0.0
        self._write_script = client.register_script(_WRITE_AGENCY_SNAPSHOT)
        self.block_counts: dict[tuple[str, str], dict[str, int]] = {}  # (block, period) -> counts
        self._instance: bytes | None = None  # the instance token this worker last wrote under
        self._replaced = False
        # Issue 14, indicator 1 without dossiers: the months, quarters and years any worker has
        # written a hash for (the shared set, as last read), and those whose catalogue-only rows
        # this worker has marked for its agencies.
        self.periods_with_figures: set[str] = set()
        self._catalogue_periods: set[str] = set()

    @property
    def client(self) -> aioredis.Redis:
        """The worker's Redis client (also for the owner entries of streams/worker/dossier_api.py)."""
        return self._client

    def mark_dirty(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._dirty.update(pairs)

    def dirty_periods(self) -> set[str]:
        """The periods of the rows waiting to be written."""
        return {period for _, period in self._dirty}

    def mark_catalogue_only_rows(self, catalogue: Catalogue, owned_agencies: Iterable[str], current: Iterable[str]) -> None:
        """Indicator 1 needs no dossier (issue 14): an owned agency with procedures in force
        gets its hash for every month, quarter and year the cluster has figures for (this
        worker's rows, and the shared `periods-with-figures` set that every worker adds the
        periods of its rows to) and the `current` ones, even when it received nothing then and
        its partitions hold no row of that period. Marks each period once (until `forget_...`)."""
        seen = catalogue_only_periods(self.dirty_periods() | self.periods_with_figures | set(current))
        fresh = seen - self._catalogue_periods
        if fresh:
            self._catalogue_periods |= fresh
            self.mark_dirty(in_force_pairs(catalogue, self._registry, owned_agencies, fresh))

    def remark_catalogue_only_rows(self, agencies: Iterable[str]) -> None:
        """Their catalogue changed: indicator 1 appears, changes or (nothing left in force)
        the hash goes, in every period marked so far."""
        self.mark_dirty((agency, period) for agency in agencies for period in self._catalogue_periods)

    def forget_catalogue_only_rows(self) -> None:
        """New partitions: their agencies' catalogue-only rows are marked again, every period."""
        self._catalogue_periods = set()

    def forget_dirty_except(self, owned_agencies: set[str]) -> None:
        """Drop dirty rows of agencies this worker no longer owns.

        After a rebalance the old owner's copy of a moved partition stops advancing; writing
        it would put older counts over the new owner's. The new owner re-publishes every row
        of the partitions it receives, so nothing is lost by forgetting them here.
        """
        self._dirty = {pair for pair in self._dirty if pair[0] in owned_agencies}

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
            await self._check_instance()
            await self._write_agencies(dirty, read_counts, agency_docs)
            if leader_periods is not None:
                await self.read_blocks(leader_periods)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._retry_later(dirty, now)
            self.outage.failed("snapshots", exc, pending=len(self._dirty))
            return False
        except RedisError as exc:
            delay = self._retry_later(dirty, now)
            log.warning("redis refused a snapshot write, kept for retry: %s", exc, extra={
                "event": "redis_retry", "attempt": self._failures, "retry_in_s": delay, "pending": len(self._dirty)})
            return False
        self.outage.answered()
        self._failures = 0
        return True

    async def _check_instance(self) -> None:
        """Notice a Redis that lost its keys since this worker last wrote to it."""
        await self._client.set(self.keys.instance, secrets.token_hex(8), nx=True)
        token = await self._client.get(self.keys.instance)
        if self._instance is not None and token != self._instance:
            self._replaced = True
            log.warning("redis lost its keys (instance marker missing or changed): publishing every row again",
                        extra={"event": "redis_replaced"})
        self._instance = token

    def redis_replaced(self) -> bool:
        """True once after Redis was found empty or replaced: the caller must mark every row it
        owns dirty again (and rewrite whatever else it keeps in Redis)."""
        replaced, self._replaced = self._replaced, False
        return replaced

    def _retry_later(self, dirty: set[tuple[str, str]], now: float) -> float:
        """Keep `dirty` for the next attempt, after a backoff delay (returned, in seconds)."""
        self._dirty |= dirty
        self._failures += 1
        delay = min(0.5 * 2 ** (self._failures - 1), 30.0)
        self._next_attempt = now + delay
        return delay

    async def _write_agencies(
        self, dirty: set[tuple[str, str]], read_counts: CountsReader, agency_docs: Mapping[str, dict]
    ) -> None:
        if agency_docs:
            # First: a ranking rebuilt as soon as the counts below mark its period dirty must
            # find the statuses of this tick (after a Redis wipe, there are none before this).
            await self._client.hset(self.keys.agencies, mapping={code: orjson.dumps(doc) for code, doc in agency_docs.items()})
        updated_at = now_rfc3339("milliseconds")
        ordered = sorted(dirty)
        for start in range(0, len(ordered), 500):
            async with self._client.pipeline(transaction=False) as pipe:
                for agency, period in ordered[start : start + 500]:
                    block = self._block_of(agency)
                    counts = read_counts(agency, period)
                    keys = [self.keys.agency(agency, period), self.keys.block(block, period),
                            self.keys.block(NATIONAL, period), self.keys.rank(block, period),
                            self.keys.rankings_dirty]
                    values = ",".join([str(int(counts.get(name, 0))) for name in WRITTEN_FIELDS])
                    args = [agency, updated_at, period, values]
                    # Via the pipeline, redis-py loads the script first when the server lacks
                    # it (e.g. a restarted redis-server), instead of failing with NOSCRIPT.
                    await self._write_script(keys=keys, args=args, client=pipe)
                await pipe.execute()
        # After the hashes (a period is listed once a hash of it may exist), and whatever this
        # worker wrote: the other workers' catalogue-only hashes of these periods follow.
        periods = catalogue_only_periods({period for _, period in dirty})
        async with self._client.pipeline(transaction=False) as pipe:
            if periods:
                pipe.sadd(self.keys.periods_with_figures, *sorted(periods))
            pipe.smembers(self.keys.periods_with_figures)
            listed = (await pipe.execute())[-1]
        self.periods_with_figures = {as_text(period) for period in listed}

    def _block_of(self, agency: str) -> str:
        known = self._registry.get(agency)
        return known.block if known is not None else "province"

    async def read_blocks(self, periods: Iterable[str]) -> None:
        """Refresh `block_counts` for these periods (for the leader's block gauges)."""
        wanted = [(block, period) for period in periods for block in SCOPES]
        async with self._client.pipeline(transaction=False) as pipe:
            for block, period in wanted:
                pipe.hgetall(self.keys.block(block, period))
            hashes = await pipe.execute()
        self.block_counts = {pair: counts_from_hash(fields) for pair, fields in zip(wanted, hashes)}

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
