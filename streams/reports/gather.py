"""`emc report`: what the national bulletins print, read from Redis (issue 5, item 6).

Gathering (this module) reads the snapshot hashes of one period and builds a `ReportData`;
rendering (`streams/reports/render.py`) turns it into text, JSON or HTML without any I/O.

The rankings are recomputed here from the agency hashes with the same pure functions the
leader uses for its lists (`streams/domain/rankings.py`), so the report can show either view:
as-was (the agencies as they were, what the workers write) or restated onto the units valid on
a chosen day (default today). Block and national totals come from the block hashes; they are
the same in both views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from fractions import Fraction

import redis.asyncio as aioredis

from streams.domain.periods import Period, parse_period
from streams.domain.rankings import BlockRanking
from streams.domain.registry import Registry
from streams.domain.reorg import AS_WAS
from streams.domain.snapshot import counts_from_hash
from streams.domain.targets import block_targets
from streams.sinks.redis_rankings import (
    RankingKeys,
    as_text,
    block_rankings,
    read_maintenance_windows,
    read_period_counts,
    read_statuses,
)

SCOPES = ("national", "ministry", "province")


@dataclass(frozen=True, slots=True)
class Totals:
    """A block's (or the nation's) figures in the period, with its target."""

    scope: str
    full_online: int
    resolved: int
    target: Fraction | None

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.full_online, self.resolved) if self.resolved > 0 else None

    @property
    def target_met(self) -> bool | None:
        rate = self.rate
        return None if rate is None or self.target is None else rate >= self.target


@dataclass(frozen=True, slots=True)
class BlockSection:
    totals: Totals
    ranking: BlockRanking
    agency_targets: Mapping[str, Fraction]  # per-agency targets registered for the period


@dataclass(frozen=True, slots=True)
class ReportData:
    period: Period
    view: str
    restated_on: date | None  # the day the restated view maps onto; None as-was
    generated_at: datetime
    has_data: bool
    top_n: int
    national: Totals
    blocks: tuple[BlockSection, ...]


def _target(value: float | str | bytes | None) -> Fraction | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return Fraction(text).limit_denominator(1_000_000)


async def gather_report(
    client: aioredis.Redis,
    registry: Registry,
    prefix: str,
    period_text: str,
    *,
    blocks: Sequence[str] = ("province", "ministry"),
    view: str = AS_WAS,
    top_n: int = 10,
    today: date,
    restate_on: date | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Everything the report shows for one period, read from Redis."""
    period = parse_period(period_text)
    keys = RankingKeys(prefix)
    counts = await read_period_counts(client, keys, registry, period.text)
    async with client.pipeline(transaction=False) as pipe:
        for scope in SCOPES:
            pipe.hgetall(keys.block(scope, period.text))
        pipe.hgetall(keys.targets(period.text))
        *block_hashes, agency_target_hash = await pipe.execute()
    statuses = await read_statuses(client, keys)
    windows = await read_maintenance_windows(client, keys)
    targets = block_targets(period.first_day.year)
    totals = {}
    for scope, fields in zip(SCOPES, block_hashes, strict=True):
        block_counts = counts_from_hash(fields)
        totals[scope] = Totals(scope, block_counts.get("full_online", 0), block_counts.get("resolved", 0),
                               _target(targets.get(scope)))
    agency_targets = {
        as_text(code): _target(value) for code, value in agency_target_hash.items()
    }
    rankings = block_rankings(registry, period.text, counts, statuses, today, view, blocks, restate_on, windows)
    sections = tuple(
        BlockSection(
            totals[block],
            rankings[block],
            {code: t for code, t in agency_targets.items() if (a := registry.get(code)) is not None and a.block == block and t is not None},
        )
        for block in blocks
    )
    return ReportData(
        period=period,
        view=view,
        restated_on=None if view == AS_WAS else (restate_on or today),
        generated_at=now or datetime.now(timezone.utc),
        has_data=bool(counts) or any(block_hashes),
        top_n=top_n,
        national=totals["national"],
        blocks=sections,
    )
