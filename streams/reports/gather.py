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
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from fractions import Fraction

import redis.asyncio as aioredis

from streams.domain.control import Maintenance
from streams.domain.periods import Period, parse_period
from streams.domain.rankings import BlockRanking, block_rankings
from streams.domain.registry import SCOPES, Registry
from streams.domain.reorg import AS_WAS
from streams.domain.snapshot import counts_from_hash
from streams.domain.targets import block_targets
from streams.sinks.keys import RedisKeys, as_text
from streams.sinks.redis_rankings import (
    read_maintenance_windows,
    read_period_counts,
    read_statuses,
)

REPORT_BLOCKS = ("province", "ministry")  # the bulletins list the provinces first


@dataclass(frozen=True, slots=True)
class Totals:
    """A block's (or the nation's) figures in the period, with its target."""

    scope: str
    full_online: int
    resolved: int
    target: Fraction | None
    counts: Mapping[str, int] = field(default_factory=dict)  # every integer field of the block hash

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.full_online, self.resolved) if self.resolved > 0 else None

    def share(self, numerator: str, denominator: str) -> Fraction | None:
        """counts[numerator] / counts[denominator]; None when the denominator is 0."""
        den = self.counts.get(denominator, 0)
        return Fraction(self.counts.get(numerator, 0), den) if den > 0 else None

    @property
    def full_online_procedures_rate(self) -> Fraction | None:
        """The bulletin's indicator 1: full-online procedures / procedures in force."""
        return self.share("full_online_procedures_in_force", "procedures_in_force")

    @property
    def full_online_procedures_used_rate(self) -> Fraction | None:
        """Indicator 2: full-online procedures with online dossiers / procedures with dossiers."""
        return self.share("full_online_procedures_with_online_dossiers", "procedures_with_dossiers")

    @property
    def national_portal_rate(self) -> Fraction | None:
        return self.share("received_national_portal", "received_online")

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
class Finality:
    """Where a period stands: `open` (not ended), `closed` (ended, never published),
    `published` (figures as in the latest version) or `restated` (changed since it)."""

    state: str
    version: int | None = None  # the latest published version


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
    finality: Finality | None = None  # open / closed / published / restated; None: not shown


def _target(value: float | str | bytes | None) -> Fraction | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return Fraction(text).limit_denominator(1_000_000)


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """What a report of one period is computed from: the period's agency counts and block
    counts, the agencies' own targets, statuses and declared maintenance windows. Read from
    Redis for the current figures, or taken from a published bulletin (`streams/reports/bulletins.py`)."""

    period: str
    agency_counts: Mapping[str, Mapping[str, int]]  # agency code -> counts (agencies with a hash)
    block_counts: Mapping[str, Mapping[str, int]]  # national|ministry|province -> counts
    agency_targets: Mapping[str, str]  # agency code -> ratio as a decimal string
    statuses: Mapping[str, str]
    maintenance_windows: Mapping[str, tuple[Maintenance, ...]]


async def read_report_inputs(client: aioredis.Redis, registry: Registry, prefix: str, period_text: str) -> ReportInputs:
    """The inputs of a report on one period, as Redis holds them now."""
    period = parse_period(period_text)
    keys = RedisKeys(prefix)
    counts = await read_period_counts(client, keys, registry, period.text)
    async with client.pipeline(transaction=False) as pipe:
        for scope in SCOPES:
            pipe.hgetall(keys.block(scope, period.text))
        pipe.hgetall(keys.targets(period.text))
        *block_hashes, agency_target_hash = await pipe.execute()
    statuses = await read_statuses(client, keys)
    windows = await read_maintenance_windows(client, keys)
    return ReportInputs(
        period=period.text,
        agency_counts=counts,
        block_counts={scope: counts_from_hash(fields) for scope, fields in zip(SCOPES, block_hashes, strict=True) if fields},
        agency_targets={as_text(code): as_text(value) for code, value in agency_target_hash.items()},
        statuses=statuses,
        maintenance_windows=windows,
    )


def build_report(
    inputs: ReportInputs,
    registry: Registry,
    *,
    blocks: Sequence[str] = ("province", "ministry"),
    view: str = AS_WAS,
    top_n: int = 10,
    today: date,
    restate_on: date | None = None,
    now: datetime,
    finality: Finality | None = None,
) -> ReportData:
    """A report from its inputs: pure, so that a published bulletin renders the same bytes again."""
    period = parse_period(inputs.period)
    targets = block_targets(period.first_day.year)
    totals = {}
    for scope in SCOPES:
        block_counts = inputs.block_counts.get(scope, {})
        totals[scope] = Totals(scope, block_counts.get("full_online", 0), block_counts.get("resolved", 0),
                               _target(targets.get(scope)), block_counts)
    agency_targets = {code: _target(value) for code, value in inputs.agency_targets.items()}
    rankings = block_rankings(registry, period.text, inputs.agency_counts, inputs.statuses, today, view, blocks,
                              restate_on, inputs.maintenance_windows)
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
        generated_at=now,
        has_data=bool(inputs.agency_counts) or bool(inputs.block_counts),
        top_n=top_n,
        national=totals["national"],
        blocks=sections,
        finality=finality,
    )


async def gather_report(
    client: aioredis.Redis,
    registry: Registry,
    prefix: str,
    period_text: str,
    *,
    blocks: Sequence[str] = REPORT_BLOCKS,
    view: str = AS_WAS,
    top_n: int = 10,
    today: date,
    restate_on: date | None = None,
    now: datetime | None = None,
    finality: Finality | None = None,
) -> ReportData:
    """Everything the report shows for one period, read from Redis."""
    inputs = await read_report_inputs(client, registry, prefix, period_text)
    return build_report(inputs, registry, blocks=blocks, view=view, top_n=top_n, today=today, restate_on=restate_on,
                        now=now or datetime.now(timezone.utc), finality=finality)
