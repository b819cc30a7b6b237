"""Published bulletins (issue 15): publishing a period's figures as version N, reading a
version back (Redis, else the topic), the report as published, and what changed since.

Where a version lives:
- the compacted topic `emc.bulletins.v1` (`Settings.bulletin_topic`), key `{period}:v{N}`, value
  the sealed JSON document (`streams/domain/bulletin.py`): the durable record, written first and
  acknowledged by the broker before anything else happens;
- Redis `{prefix}bulletin:{key}` with the topic's key (the same bytes) and the index hash
  `{prefix}bulletins` (field `{period}:v{N}`, value the summary: period, version,
  published_at, note, sha256); the agency and block hashes of the period get
  `published_version`. A version missing from Redis is read from the topic and written back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.domain.bulletin import (
    BULLETIN_SCHEMA,
    BulletinSummary,
    bulletin_key,
    counts_of,
    frozen_fields,
    parse_bulletin_key,
    published_on,
    restated_agency_count,
    seal_holds,
    sealed,
    windows_of,
)
from streams.domain.finality import PUBLISHED, period_finality
from streams.domain.instants import VN_TZ, rfc3339_utc, us_of
from streams.domain.periods import parse_period
from streams.domain.rankings import block_rankings, ranking_json
from streams.domain.registry import BLOCKS, SCOPES, Registry
from streams.domain.reorg import AS_WAS
from streams.domain.reorg import RESTATED as RESTATED_VIEW
from streams.errors import ConfigError
from streams.reports.gather import Finality, ReportData, ReportInputs, build_report, read_report_inputs
from streams.settings import Settings
from streams.sinks.keys import RedisKeys, as_text
from streams.sinks.metrics import PublishedPeriod

log = logging.getLogger(__name__)


def _parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- reading the current figures -----------------------------------------------------------------


async def read_period_hashes(client: aioredis.Redis, registry: Registry, keys: RedisKeys,
                             period: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The frozen fields of every agency hash and block hash of the period (those that exist)."""
    codes = [agency.code for agency in registry]
    async with client.pipeline(transaction=False) as pipe:
        for code in codes:
            pipe.hgetall(keys.agency(code, period))
        for scope in SCOPES:
            pipe.hgetall(keys.block(scope, period))
        replies = await pipe.execute()
    agencies = {code: frozen_fields(h) for code, h in zip(codes, replies[: len(codes)], strict=True) if h}
    blocks = {scope: frozen_fields(h) for scope, h in zip(SCOPES, replies[len(codes):], strict=True) if h}
    return agencies, blocks


def inputs_of(doc: Mapping[str, Any]) -> ReportInputs:
    """The report inputs a bulletin froze."""
    return ReportInputs(
        period=doc["period"],
        agency_counts={code: counts_of(fields) for code, fields in doc["agencies"].items()},
        block_counts={scope: counts_of(fields) for scope, fields in doc["blocks"].items()},
        agency_targets=dict(doc.get("agency_targets", {})),
        statuses=dict(doc.get("statuses", {})),
        maintenance_windows=windows_of(doc),
    )


def build_document(registry: Registry, period: str, version: int, note: str | None, now: datetime,
                   agencies: Mapping[str, Mapping[str, Any]], blocks: Mapping[str, Mapping[str, Any]],
                   current: ReportInputs) -> dict[str, Any]:
    """The sealed bulletin of a period from the hashes and report inputs read just now."""
    on = now.astimezone(VN_TZ).date()
    doc: dict[str, Any] = {
        "schema": BULLETIN_SCHEMA,
        "period": period,
        "version": version,
        "published_at": rfc3339_utc(now, "milliseconds"),
        "published_on": on.isoformat(),
        "note": note,
        "agencies": {code: dict(fields) for code, fields in sorted(agencies.items())},
        "blocks": {scope: dict(fields) for scope, fields in sorted(blocks.items())},
        "agency_targets": dict(sorted(current.agency_targets.items())),
        "statuses": dict(sorted(current.statuses.items())),
        "maintenance_windows": {code: [w.history_json() for w in windows]
                                for code, windows in sorted(current.maintenance_windows.items())},
    }
    frozen = inputs_of(doc)
    doc["rankings"] = {
        view: {block: ranking_json(ranking) for block, ranking in
               block_rankings(registry, period, frozen.agency_counts, frozen.statuses, on, view, BLOCKS, None,
                              frozen.maintenance_windows).items()}
        for view in (AS_WAS, RESTATED_VIEW)
    }
    return sealed(doc)


# -- the topic ---------------------------------------------------------------------------------


def read_topic_documents(settings: Settings, period: str | None = None, timeout_s: float = 30.0) -> dict[tuple[str, int], dict]:
    """Every bulletin on the topic (of one period), by (period, version); a record that is not
    a sealed bulletin is skipped with a warning."""
    from streams.kafka.compacted import read_whole_topic
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={settings.bulletin_topic})
    found: dict[tuple[str, int], dict] = {}
    for partition, offset, key, value in read_whole_topic(settings, settings.bulletin_topic,
                                                          client_id=f"{settings.app_id}-bulletin-cli", timeout_s=timeout_s):
        parsed = parse_bulletin_key(key.decode("utf-8", "replace")) if key else None
        if parsed is None or value is None:
            log.warning("skipping a record of %s at %d/%d: not a bulletin key or empty", settings.bulletin_topic,
                        partition, offset)
            continue
        if period is not None and parsed[0] != period:
            continue
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("skipping bulletin %s at %d/%d: not JSON", parsed, partition, offset)
            continue
        if not isinstance(doc, dict) or not seal_holds(doc):
            log.warning("skipping bulletin %s at %d/%d: its sha256 does not match its content", parsed, partition, offset)
            continue
        found[parsed] = doc
    return found


def send_document(settings: Settings, doc: Mapping[str, Any], timeout_s: float = 30.0) -> tuple[int, int]:
    from streams.kafka.compacted import produce_acked

    key = bulletin_key(doc["period"], doc["version"]).encode()
    return produce_acked(settings, settings.bulletin_topic, [(key, orjson.dumps(doc))], what="bulletin",
                         client_id=f"{settings.app_id}-bulletin-cli", timeout_s=timeout_s)[0]


# -- Redis -------------------------------------------------------------------------------------


# `published_version` on the hashes that exist, in one script: Redis runs it whole, so a hash a
# worker deletes (its counts fell to zero) between the document's read and this write is not
# recreated holding nothing but `published_version` (a plain HSET would recreate it).
_MARK_PUBLISHED = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HSET', KEYS[i], 'published_version', ARGV[1]) end
end
return 0
"""


async def store_in_redis(client: aioredis.Redis, keys: RedisKeys, doc: Mapping[str, Any], *,
                         mark_hashes: bool) -> None:
    """The document, its index entry, and (`mark_hashes`) `published_version` on the period's
    hashes that still exist."""
    period, version = doc["period"], int(doc["version"])
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.bulletin(period, version), orjson.dumps(doc))
        pipe.hset(keys.bulletins, bulletin_key(period, version), orjson.dumps(BulletinSummary.of(doc).to_json()))
        if mark_hashes:
            hashes = [keys.agency(code, period) for code in doc["agencies"]] + [keys.block(scope, period) for scope in doc["blocks"]]
            if hashes:
                pipe.eval(_MARK_PUBLISHED, len(hashes), *hashes, version)
        await pipe.execute()


async def redis_versions(client: aioredis.Redis, keys: RedisKeys, period: str) -> list[int]:
    out = []
    for field in await client.hkeys(keys.bulletins):
        parsed = parse_bulletin_key(as_text(field))
        if parsed is not None and parsed[0] == period:
            out.append(parsed[1])
    return sorted(out)


async def read_redis_document(client: aioredis.Redis, keys: RedisKeys, period: str, version: int) -> dict | None:
    raw = await client.get(keys.bulletin(period, version))
    if raw is None:
        return None
    doc = orjson.loads(raw)
    if not seal_holds(doc):
        log.warning("bulletin %s in Redis does not match its sha256; reading the topic", keys.bulletin(period, version))
        return None
    return doc


@dataclass(frozen=True, slots=True)
class Published:
    doc: dict
    partition: int
    offset: int


async def publish(settings: Settings, client: aioredis.Redis, registry: Registry, period_text: str,
                  note: str | None, *, now: datetime | None = None) -> Published:
    """Freeze the period's figures as its next version: topic first (acked), then Redis."""
    import asyncio

    period = parse_period(period_text).text
    keys = RedisKeys(settings.redis_prefix)
    on_topic = await asyncio.to_thread(read_topic_documents, settings, period)
    versions = [v for (_, v) in on_topic] + await redis_versions(client, keys, period)
    version = max(versions, default=0) + 1
    agencies, blocks = await read_period_hashes(client, registry, keys, period)
    if not agencies and not blocks:
        raise ConfigError(f"no figures for {period} in Redis ({settings.redis_prefix}): nothing to publish")
    current = await read_report_inputs(client, registry, settings.redis_prefix, period)
    doc = build_document(registry, period, version, note, now or datetime.now(timezone.utc), agencies, blocks, current)
    partition, offset = await asyncio.to_thread(send_document, settings, doc)
    await store_in_redis(client, keys, doc, mark_hashes=True)
    return Published(doc, partition, offset)


async def load_document(settings: Settings, client: aioredis.Redis, period_text: str, version: int | None) -> dict:
    """Version N of the period (the latest when None): from Redis, else from the topic (and
    then written back to Redis)."""
    import asyncio

    period = parse_period(period_text).text
    keys = RedisKeys(settings.redis_prefix)
    if version is None:
        known = await redis_versions(client, keys, period)
        version = known[-1] if known else None
    if version is not None:
        doc = await read_redis_document(client, keys, period, version)
        if doc is not None:
            return doc
    on_topic = await asyncio.to_thread(read_topic_documents, settings, period)
    if version is None:
        version = max((v for (_, v) in on_topic), default=None)
    if version is None or (period, version) not in on_topic:
        which = "no bulletin" if version is None else f"no version {version}"
        raise ConfigError(f"{which} of {period} published (see `emc bulletin list`)")
    doc = on_topic[(period, version)]
    await store_in_redis(client, keys, doc, mark_hashes=False)
    log.warning("bulletin %s was missing from Redis: read from %s and written back", bulletin_key(period, version),
                settings.bulletin_topic)
    return doc


def list_documents(settings: Settings, period: str | None) -> list[BulletinSummary]:
    docs = read_topic_documents(settings, period)
    return [BulletinSummary.of(docs[k]) for k in sorted(docs)]


def as_published_report(doc: Mapping[str, Any], registry: Registry, *, blocks: Sequence[str], view: str, top_n: int,
                        restate_on: date | None) -> ReportData:
    """The report of the period as published: the frozen inputs, the publication's time and day."""
    return build_report(inputs_of(doc), registry, blocks=blocks, view=view, top_n=top_n, today=published_on(doc),
                        restate_on=restate_on, now=_parse_rfc3339(doc["published_at"]),
                        finality=Finality(PUBLISHED, int(doc["version"])))


async def current_finality(client: aioredis.Redis, registry: Registry, prefix: str, period: str,
                           now: datetime) -> Finality:
    """open / closed / published / restated for the report on the current figures."""
    keys = RedisKeys(prefix)
    versions = await redis_versions(client, keys, period)
    latest = versions[-1] if versions else None
    restated = False
    if latest is not None:
        doc = await read_redis_document(client, keys, period, latest)
        if doc is not None:
            agencies, _ = await read_period_hashes(client, registry, keys, period)
            restated = restated_agency_count(doc["agencies"], agencies) > 0
    state = period_finality(period, us_of(now), latest, restated)
    return Finality(state, latest)



@dataclass(frozen=True, slots=True)
class BulletinDiff:
    doc: dict
    national_before: Mapping[str, int]
    national_now: Mapping[str, int]
    agencies: list  # AgencyRestatement, by code
    events: Mapping[str, int]  # event kinds since publication, summed over the period's agencies


async def diff_since(client: aioredis.Redis, registry: Registry, prefix: str, doc: Mapping[str, Any],
                     today: date) -> BulletinDiff:
    """Each agency whose counts differ from the version, before -> now, with the events since."""
    from streams.domain.bulletin import restatements
    from streams.domain.finality import EVENT_COUNT_FIELDS

    period = doc["period"]
    keys = RedisKeys(prefix)
    agencies, blocks = await read_period_hashes(client, registry, keys, period)
    current = await read_report_inputs(client, registry, prefix, period)
    frozen = inputs_of(doc)
    before_rankings = block_rankings(registry, period, frozen.agency_counts, frozen.statuses, published_on(doc), AS_WAS)
    now_rankings = block_rankings(registry, period, current.agency_counts, current.statuses, today, AS_WAS)
    last_day = parse_period(period).last_day
    names = {}
    for code in doc["agencies"].keys() | agencies.keys():
        agency = registry.get(code)
        names[code] = (agency.named_on(last_day).name, agency.block) if agency else (code, "")
    changes = restatements(doc["agencies"], agencies, before_rankings, now_rankings, names)
    events = {f: sum(int(a.get(f, 0)) for a in agencies.values()) - sum(int(a.get(f, 0)) for a in doc["agencies"].values())
              for f in EVENT_COUNT_FIELDS}
    return BulletinDiff(doc, counts_of(doc["blocks"].get("national", {})), counts_of(blocks.get("national", {})),
                        changes, events)


BULLETIN_REFRESH_S = 10.0  # the leader's bulletin gauges are at most this old


class BulletinWatch:
    """The leader's view of the published periods: for each period's latest version, how many
    agencies are restated since and how far the national rate moved (the bulletin gauges).
    Documents are immutable, so each is read from Redis once."""

    def __init__(self, client: aioredis.Redis, registry: Registry, prefix: str) -> None:
        self._client = client
        self._registry = registry
        self._keys = RedisKeys(prefix)
        self._docs: dict[tuple[str, int], dict] = {}

    async def refresh(self) -> dict[str, PublishedPeriod]:
        latest: dict[str, int] = {}
        for field in await self._client.hkeys(self._keys.bulletins):
            parsed = parse_bulletin_key(as_text(field))
            if parsed is not None:
                latest[parsed[0]] = max(latest.get(parsed[0], 0), parsed[1])
        out = {}
        for period, version in sorted(latest.items()):
            doc = self._docs.get((period, version))
            if doc is None:
                doc = await read_redis_document(self._client, self._keys, period, version)
                if doc is None:
                    continue  # `emc report --as-published` or `emc bulletin diff` writes it back from the topic
                self._docs[(period, version)] = doc
            agencies, blocks = await read_period_hashes(self._client, self._registry, self._keys, period)
            before = _national_rate(doc["blocks"].get("national", {}))
            now = _national_rate(blocks.get("national", {}))
            change = None if before is None or now is None else float(now - before)
            out[period] = PublishedPeriod(version, restated_agency_count(doc["agencies"], agencies), change)
        return out


def _national_rate(fields: Mapping[str, Any]) -> Fraction | None:
    counts = counts_of(fields)
    return Fraction(counts.get("full_online", 0), counts["resolved"]) if counts.get("resolved") else None
