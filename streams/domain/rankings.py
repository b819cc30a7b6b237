"""Rankings of a period, per block, as pure functions of the per-agency counts (issue 5, item 3).

What officials read: the full ranking by full-online rate, the top N, the units under a
threshold (10 %), and the units that send no data (silent, never connected) or are declared in
maintenance. The inputs are the counts of contract section 3 (one mapping per agency), the
registry, and the agencies' current statuses (`emc:v1:agencies`).

Rules, chosen so that any two readers get the same lists from the same counts:

- Only units with `resolved` > 0 are ranked. A unit with nothing resolved has no rate ("no
  figure"): it is never ranked, never in the top N and never "under 10 %" — 0/0 is not 0 %.
- Rates are compared exactly, as fractions `full_online / resolved` (no float rounding: 1/3 and
  2/6 are the same rate).
- Order: rate descending, then `resolved` descending (more dossiers behind the same rate first),
  then agency code ascending. That is a total order: the ranking does not depend on the order
  of the input.
- Rank numbers are standard competition ranks on the rate alone: units with the same rate share
  the rank of the first of them and the next rate's rank skips the shared places
  ("1, 2, 2, 4"). The tie-breaks above only order the rows that share a rank.
- Top N: every ranked unit whose rank is at most N. A tie across the N-th place keeps all the
  tied units (nobody is cut by the alphabet), so the list can be longer than N; it is always a
  prefix of the ranking.
- Under the threshold: ranked units whose rate is strictly below it (a suffix of the ranking).
- Status lists (silent, never, maintenance) describe *now*, not the period: they list the
  block's units valid on the status day (today) with that status in the agencies hash.
- Maintenance in the period: the block's units with a declared maintenance window that
  touches at least one day of the period (Asia/Ho_Chi_Minh days), ended windows included, with
  those windows. This is what a bulletin on a past period names ("disconnected for a system
  upgrade").
- The units of a period (as-was view) are the block's registry units valid on at least one day
  of the period, plus any unit that has counts in it (a late event of a unit merged away).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from streams.domain.control import Maintenance
from streams.domain.periods import Period, parse_period
from streams.domain.registry import BLOCKS, Agency, Registry
from streams.domain.reorg import AS_WAS, RESTATED, VIEWS, restate, restated_units

DEFAULT_THRESHOLD = Fraction(1, 10)
DEFAULT_TOP_N = 10
STATUS_LISTS = ("silent", "never", "maintenance")


@dataclass(frozen=True, slots=True)
class UnitFigures:
    """One unit's figures in a period: the two counts behind the headline rate."""

    code: str
    name: str
    name_en: str
    block: str
    full_online: int
    resolved: int
    merged_from: tuple[str, ...] = ()  # restated view: the codes whose counts were summed in

    @property
    def rate(self) -> Fraction | None:
        """full_online / resolved, exact; None (undefined) when nothing was resolved."""
        return Fraction(self.full_online, self.resolved) if self.resolved > 0 else None


@dataclass(frozen=True, slots=True)
class RankedUnit:
    rank: int
    unit: UnitFigures


@dataclass(frozen=True, slots=True)
class StatusUnit:
    code: str
    name: str
    name_en: str
    status: str


@dataclass(frozen=True, slots=True)
class MaintainedUnit:
    """A unit with declared maintenance windows touching the period."""

    code: str
    name: str
    name_en: str
    windows: tuple[Maintenance, ...]


@dataclass(frozen=True, slots=True)
class BlockRanking:
    block: str
    period: str
    view: str
    threshold: Fraction
    ranking: tuple[RankedUnit, ...]
    no_figure: tuple[UnitFigures, ...]  # units of the period with resolved == 0
    status_units: tuple[StatusUnit, ...] = field(default=())
    maintained: tuple[MaintainedUnit, ...] = field(default=())  # windows touching the period

    def top(self, n: int = DEFAULT_TOP_N) -> tuple[RankedUnit, ...]:
        return tuple(entry for entry in self.ranking if entry.rank <= n)

    @property
    def under_threshold(self) -> tuple[RankedUnit, ...]:
        return tuple(entry for entry in self.ranking if entry.unit.rate is not None and entry.unit.rate < self.threshold)

    def with_status(self, status: str) -> tuple[StatusUnit, ...]:
        return tuple(unit for unit in self.status_units if unit.status == status)


def sort_key(unit: UnitFigures) -> tuple[Fraction, int, str]:
    """The ranking order as an ascending sort key (units with a rate only)."""
    rate = unit.rate
    if rate is None:
        raise ValueError(f"{unit.code}: no rate (resolved is 0), cannot be ranked")
    return (-rate, -unit.resolved, unit.code)


def rank_units(units: Iterable[UnitFigures]) -> tuple[RankedUnit, ...]:
    """The full ranking of the units that have a rate; units without one are left out."""
    ordered = sorted((unit for unit in units if unit.rate is not None), key=sort_key)
    ranked: list[RankedUnit] = []
    for position, unit in enumerate(ordered, start=1):
        if ranked and ranked[-1].unit.rate == unit.rate:
            rank = ranked[-1].rank
        else:
            rank = position
        ranked.append(RankedUnit(rank, unit))
    return tuple(ranked)


def units_of_period(registry: Registry, block: str, period: Period) -> list[Agency]:
    """The block's registry units valid on at least one day of the period (the as-was units)."""
    return [
        agency
        for agency in registry.by_block(block)
        if agency.valid_from <= period.last_day and (agency.valid_to is None or agency.valid_to >= period.first_day)
    ]


def figures_of(
    codes: Iterable[str],
    counts: Mapping[str, Mapping[str, int]],
    registry: Registry,
    merged_from: Mapping[str, tuple[str, ...]] | None = None,
    named_on: date | None = None,
) -> list[UnitFigures]:
    """Each unit's figures, named as on `named_on` (by default under its current name)."""
    out = []
    for code in codes:
        agency = registry.get(code)
        if agency is not None and named_on is not None:
            agency = agency.named_on(named_on)
        row = counts.get(code, {})
        out.append(
            UnitFigures(
                code=code,
                name=agency.name if agency else code,
                name_en=agency.name_en if agency else code,
                block=agency.block if agency else "province",
                full_online=int(row.get("full_online", 0)),
                resolved=int(row.get("resolved", 0)),
                merged_from=(merged_from or {}).get(code, ()),
            )
        )
    return out


def build_block_ranking(
    block: str,
    period: Period,
    counts: Mapping[str, Mapping[str, int]],
    registry: Registry,
    statuses: Mapping[str, str],
    *,
    status_day: date,
    view: str = AS_WAS,
    unit_codes: Iterable[str] | None = None,
    merged_from: Mapping[str, tuple[str, ...]] | None = None,
    threshold: Fraction = DEFAULT_THRESHOLD,
    maintenance_windows: Mapping[str, Iterable[Maintenance]] | None = None,
) -> BlockRanking:
    """Everything the bulletins list for one block and period.

    `counts`: agency code -> counts of the period (as-was: as the workers wrote them; restated:
    see `streams.domain.reorg.restate`). `unit_codes`: the units to consider; by default the
    as-was units of the period. Codes of `counts` in the block are always added.
    `maintenance_windows`: agency code -> its declared windows (any period; filtered here).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    codes = list(unit_codes) if unit_codes is not None else [a.code for a in units_of_period(registry, block, period)]
    known = set(codes)
    for code in sorted(counts):
        agency = registry.get(code)
        if code not in known and agency is not None and agency.block == block:
            codes.append(code)
            known.add(code)
    # Units are named as at the end of the period (today, for the current one), so a bulletin
    # on 2024 says Thừa Thiên Huế and one on 2025 says Huế.
    name_day = min(period.last_day, status_day)
    figures = figures_of(codes, counts, registry, merged_from, named_on=name_day)
    no_figure = tuple(sorted((unit for unit in figures if unit.rate is None), key=lambda u: u.code))
    block_agencies = [agency.named_on(name_day) for agency in sorted(registry.by_block(block), key=lambda a: a.code)]
    status_units = tuple(
        StatusUnit(agency.code, agency.name, agency.name_en, statuses[agency.code])
        for agency in block_agencies
        if agency.is_valid_on(status_day) and statuses.get(agency.code) in STATUS_LISTS
    )
    maintained = []
    for agency in block_agencies:
        touching = tuple(w for w in (maintenance_windows or {}).get(agency.code, ()) if w.overlaps(period))
        if touching:
            maintained.append(MaintainedUnit(agency.code, agency.name, agency.name_en, touching))
    return BlockRanking(
        block=block,
        period=period.text,
        view=view,
        threshold=threshold,
        ranking=rank_units(figures),
        no_figure=no_figure,
        status_units=status_units,
        maintained=tuple(maintained),
    )


def rate_number(rate: Fraction | None) -> float | None:
    """A rate as a JSON number, rounded to 6 places like the snapshot hashes."""
    return None if rate is None else round(float(rate), 6)


def ranked_json(entry: RankedUnit) -> dict:
    unit = entry.unit
    out = {
        "rank": entry.rank,
        "code": unit.code,
        "name": unit.name,
        "name_en": unit.name_en,
        "rate": rate_number(unit.rate),
        "full_online": unit.full_online,
        "resolved": unit.resolved,
    }
    if unit.merged_from:
        out["merged_from"] = list(unit.merged_from)
    return out


def unit_json(unit: UnitFigures) -> dict:
    out = {"code": unit.code, "name": unit.name, "name_en": unit.name_en, "rate": None,
           "full_online": unit.full_online, "resolved": unit.resolved}
    if unit.merged_from:
        out["merged_from"] = list(unit.merged_from)
    return out


def status_json(unit: StatusUnit) -> dict:
    return {"code": unit.code, "name": unit.name, "name_en": unit.name_en, "status": unit.status}


def maintained_json(unit: MaintainedUnit) -> dict:
    return {"code": unit.code, "name": unit.name, "name_en": unit.name_en,
            "windows": [w.history_json() for w in unit.windows]}


def ranking_json(ranking: BlockRanking, top_n: int = DEFAULT_TOP_N) -> dict:
    """The whole ranking of a block as one JSON object (Redis `ranking:` keys, `emc report`)."""
    return {
        "block": ranking.block,
        "period": ranking.period,
        "view": ranking.view,
        "threshold": float(ranking.threshold),
        "top_n": top_n,
        "ranking": [ranked_json(entry) for entry in ranking.ranking],
        "top": [ranked_json(entry) for entry in ranking.top(top_n)],
        "under_threshold": [ranked_json(entry) for entry in ranking.under_threshold],
        "no_figure": [unit_json(unit) for unit in ranking.no_figure],
        **{status: [status_json(unit) for unit in ranking.with_status(status)] for status in STATUS_LISTS},
        "maintenance_in_period": [maintained_json(unit) for unit in ranking.maintained],
    }


def block_rankings(
    registry: Registry,
    period_text: str,
    counts: Mapping[str, Mapping[str, int]],
    statuses: Mapping[str, str],
    today: date,
    view: str,
    blocks: Iterable[str] = BLOCKS,
    restate_on: date | None = None,
    maintenance_windows: Mapping[str, Iterable[Maintenance]] | None = None,
) -> dict[str, BlockRanking]:
    """The rankings of a period in one view; restated onto the units valid on `restate_on`
    (default `today`). Status lists are of the units valid `today`."""
    period = parse_period(period_text)
    if view == AS_WAS:
        return {
            block: build_block_ranking(block, period, counts, registry, statuses, status_day=today, view=AS_WAS,
                                       maintenance_windows=maintenance_windows)
            for block in blocks
        }
    on = restate_on or today
    summed, sources = restate(counts, registry, on)
    merged = {code: codes for code, codes in sources.items() if codes != (code,)}
    return {
        block: build_block_ranking(
            block, period, summed, registry, statuses, status_day=today, view=RESTATED,
            unit_codes=restated_units(registry, block, on), merged_from=merged, maintenance_windows=maintenance_windows,
        )
        for block in blocks
    }
