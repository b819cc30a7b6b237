"""Rankings and lists ready to read in Redis (issue 5, item 3), rebuilt by the leader worker.

Keys (contract additions, prefix `emc:v1:`), all JSON strings written whole in one MULTI/EXEC
per period, so a reader never sees half a ranking:

- `ranking:{ministry|province}:{period}`: the as-was ranking of the block (see
  `streams.domain.rankings.ranking_json`): `view`, `ranking` (rank, code, name, name_en, rate,
  full_online, resolved), `top`, `under_threshold`, `no_figure`, `silent`, `never`,
  `maintenance` (statuses now), `maintenance_in_period` (units with declared windows touching
  the period, with the windows), `generated_at`.
- `ranking-restated:{block}:{period}`: the same, restated onto the units valid today.
- `list:{top10|under10|silent|never|maintenance|maintenance-in-period}:{block}:{period}`: JSON
  arrays of the as-was lists (top 10 keeps units tied on the 10th place).
- `rankings:dirty`: set of periods whose agency counts changed since their lists were built.
  The per-agency Lua script of `streams/sinks/redis_snapshots.py` adds the period whenever it changes
  a count, so a late event that restates an old period also rebuilds that period's lists; the
  control publisher (`streams/kafka/control.py`) adds the periods a declared window touches.
- `rankings:rebuilding`: periods taken from `rankings:dirty` and not rebuilt yet.

Who writes them: the leader (the worker that owns state partition 0), in its own loop beside
the snapshot timer: every period it pops from `rankings:dirty`, and the current
day/month/quarter/year when an agency's status changed or every 10 seconds. The lists
are rebuilt from the agency hashes in Redis, not from the leader's own tables, so they cover
the agencies of every worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import date

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.domain.control import Maintenance, maintenance_from_history
from streams.domain.instants import now_rfc3339
from streams.domain.periods import parse_period
from streams.domain.rankings import (
    block_rankings,
    maintained_json,
    ranked_json,
    ranking_json,
    status_json,
)
from streams.domain.registry import Registry
from streams.domain.reorg import AS_WAS, RESTATED
from streams.domain.snapshot import counts_from_hash
from streams.sinks.keys import RedisKeys, as_text
from streams.sinks.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

# KEYS: dirty set, rebuilding set. ARGV: how many to move. Returns every period being rebuilt.
_CLAIM_DIRTY = """
local popped = redis.call('SPOP', KEYS[1], ARGV[1])
for _, period in ipairs(popped) do redis.call('SADD', KEYS[2], period) end
return redis.call('SMEMBERS', KEYS[2])
"""
MAX_DIRTY_PER_TICK = 64
CURRENT_REFRESH_S = 10.0  # the current periods' status lists are at most this old


async def read_period_counts(client: aioredis.Redis, keys: RedisKeys, registry: Registry, period: str) -> dict[str, dict[str, int]]:
    """agency code -> counts of the period, for every registry agency that has a hash."""
    codes = [agency.code for agency in registry]
    async with client.pipeline(transaction=False) as pipe:
        for code in codes:
            pipe.hgetall(keys.agency(code, period))
        hashes = await pipe.execute()
    return {code: counts_from_hash(fields) for code, fields in zip(codes, hashes, strict=True) if fields}


RANKED_FIELDS: tuple[str, ...] = ("full_online", "resolved")  # all a ranking reads of a unit's counts

# KEYS: agency hashes. Returns one string "i full_online resolved;..." for each KEYS[i] that
# exists (an agency hash always has every count field, streams/sinks/redis_snapshots.py).
# One command and one short reply instead of a command and a reply per agency: parsing those
# in redis-py, for every agency and every period rebuilt, was most of the leader's ranking time.
_READ_RANKED = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'full_online', 'resolved')
  if v[2] then out[#out + 1] = i .. ' ' .. (v[1] or 0) .. ' ' .. v[2] end
end
return table.concat(out, ';')
"""


async def read_ranked_counts(client: aioredis.Redis, keys: RedisKeys, registry: Registry, period: str) -> dict[str, dict[str, int]]:
    """agency code -> its RANKED_FIELDS in the period, for every registry agency that has a hash."""
    codes = [agency.code for agency in registry]
    reply = as_text(await client.register_script(_READ_RANKED)(keys=[keys.agency(code, period) for code in codes]))
    out: dict[str, dict[str, int]] = {}
    for item in filter(None, reply.split(";")):
        index, full_online, resolved = item.split(" ")
        out[codes[int(index) - 1]] = {"full_online": int(full_online), "resolved": int(resolved)}
    return out


async def read_statuses(client: aioredis.Redis, keys: RedisKeys) -> dict[str, str]:
    """agency code -> status, from the `agencies` hash (documents without a status are left out)."""
    out: dict[str, str] = {}
    for code, raw in (await client.hgetall(keys.agencies)).items():
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("status"), str):
            out[as_text(code)] = doc["status"]
    return out


async def read_maintenance_windows(client: aioredis.Redis, keys: RedisKeys) -> dict[str, tuple[Maintenance, ...]]:
    """agency code -> its declared windows, from the hash the leader writes from the control
    topic (a document that cannot be read is left out and logged)."""
    out: dict[str, tuple[Maintenance, ...]] = {}
    for code, raw in (await client.hgetall(keys.maintenance_windows)).items():
        agency = as_text(code)
        try:
            out[agency] = tuple(maintenance_from_history(agency, doc) for doc in orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            log.warning("unreadable maintenance windows of %s in %s, left out: %s", agency, keys.maintenance_windows, exc)
    return out


class RankingPublisher:
    """Rebuilds the ranking keys of some periods from the agency hashes (leader only)."""

    def __init__(self, prefix: str, registry: Registry, client: aioredis.Redis,
                 outage: RedisOutageLog | None = None) -> None:
        self.keys = RedisKeys(prefix)
        self._registry = registry
        self._client = client
        self._claim = client.register_script(_CLAIM_DIRTY)
        self.outage = outage or RedisOutageLog()
        self._statuses: dict[str, str] | None = None
        self._current_due = 0.0

    async def publish(self, current_periods: Iterable[str], today: date) -> list[str]:
        """Rebuild the current periods and the dirty ones; returns the periods rebuilt.

        Dirty periods move atomically to `rankings:rebuilding` and leave it only once rebuilt,
        so a leader that dies or loses Redis midway leaves them for the next tick or leader.
        A change during a rebuild adds its period to `rankings:dirty` again.
        """
        try:
            claimed = await self._claim(keys=[self.keys.rankings_dirty, self.keys.rankings_rebuilding],
                                        args=[MAX_DIRTY_PER_TICK])
            dirty = {as_text(p) for p in claimed}
            statuses = await read_statuses(self._client, self.keys)
            if not statuses or (self._statuses is not None and len(statuses) < len(self._statuses)):
                # The agencies hash is empty or smaller than it was: Redis came back empty and
                # the workers have not all written their agencies again. A period rebuilt now
                # would keep status lists of missing agencies until it changes again, so the
                # claimed periods wait in `rankings:rebuilding` for a later round.
                self.outage.answered()
                return []
            # A count change marks its period dirty (current periods included), so the current
            # periods need a rebuild of their own only for their status lists: when a status
            # changed, and now and then for a new day. Rebuilding them on every tick cost the
            # leader ~440 HGETALLs a second and delayed its own snapshots.
            refresh_current = statuses != self._statuses or time.monotonic() >= self._current_due
            periods = sorted(dirty | (set(current_periods) if refresh_current else set()))
            windows = await read_maintenance_windows(self._client, self.keys)
            for period in periods:
                await self.publish_period(period, statuses, windows, today)
                if period in dirty:
                    await self._client.srem(self.keys.rankings_rebuilding, period)
            if refresh_current:
                self._statuses = statuses
                self._current_due = time.monotonic() + CURRENT_REFRESH_S
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self.outage.failed("rankings", exc)  # the dirty periods stay for the next tick
            return []
        self.outage.answered()
        return periods

    async def publish_period(self, period: str, statuses: Mapping[str, str],
                             windows: Mapping[str, tuple[Maintenance, ...]], today: date) -> None:
        try:
            parse_period(period)
        except ValueError:
            log.warning("not a period in the rankings dirty set, ignored: %r", period)
            return
        counts = await read_ranked_counts(self._client, self.keys, self._registry, period)
        generated_at = now_rfc3339("milliseconds")
        values: dict[str, bytes] = {}
        for view in (AS_WAS, RESTATED):
            for block, ranking in block_rankings(self._registry, period, counts, statuses, today, view,
                                                 maintenance_windows=windows).items():
                values[self.keys.ranking(block, period, view)] = orjson.dumps({**ranking_json(ranking), "generated_at": generated_at})
                if view != AS_WAS:
                    continue
                lists = {
                    "top10": [ranked_json(e) for e in ranking.top(10)],
                    "under10": [ranked_json(e) for e in ranking.under_threshold],
                    **{s: [status_json(u) for u in ranking.with_status(s)] for s in ("silent", "never", "maintenance")},
                    "maintenance-in-period": [maintained_json(u) for u in ranking.maintained],
                }
                for kind, items in lists.items():
                    values[self.keys.list(kind, block, period)] = orjson.dumps(items)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.mset(values)
            await pipe.execute()
