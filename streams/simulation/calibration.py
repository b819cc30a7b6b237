"""Calibration profiles of the simulator: the published EMC figures as data, and the plan that
turns them into exact per-agency quotas at any scale.

Pure: no I/O but reading the packaged JSON (`streams/data/calibration-<profile>.json`, which
holds the sources and says which figures are published and which are chosen).

Why quotas and not draws: a rate drawn at random from 200 dossiers wanders by ±3 points;
the published order of ranks 1-10 would not survive. Each agency gets exactly
`round(rate * resolved)` fully-online dossiers instead, and everything else (times, channels,
payments, noise) is random. At reduced scale every agency keeps a floor of resolved dossiers
(so that a published rate is reproduced within 0.25 point); the floors change the mix of big
and small agencies, so `plan()` then (1) adds dossiers to one block so that the two blocks
keep the published national share, and (2) moves chosen (never published) rates inside
their `band`, which keeps every published order and list, so that each block total is the
published one again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from streams.domain.periods import Period, parse_period
from streams.domain.registry import BLOCKS, Registry
from streams.errors import ConfigError, InvariantError

PROFILES: tuple[str, ...] = ("2024", "2025")
PROCEDURE_INDICATORS: tuple[str, ...] = ("full_online_procedures", "full_online_procedures_used")  # 1 and 2


@dataclass(frozen=True, slots=True)
class UnitCalibration:
    code: str
    block: str
    dossiers: int  # resolved dossiers in the profile's reference period (full scale)
    full_online_rate: float
    rate_published: bool
    rank: int | None  # position in a published top 10 of its block
    band: tuple[float, float] | None  # where a chosen rate may move; None: published, fixed


@dataclass(frozen=True, slots=True)
class MaintenanceStretch:
    """A published stretch of days an agency was in maintenance (dates, not instants: the
    simulator declares it on the control topic as a `streams.domain.control.Maintenance`)."""

    agency: str
    first_day: date  # Asia/Ho_Chi_Minh dates, both inclusive
    last_day: date
    reason: str

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True, slots=True)
class TrafficShares:
    partial_share_of_rest: float
    unclassified_share: float
    rejected_share: float
    withdrawn_share: float
    pending_share: float
    fee_share: float
    mean_fee_vnd: int


@dataclass(frozen=True, slots=True)
class Calibration:
    profile: str
    title: str
    reference_period: Period
    default_period: str
    units: tuple[UnitCalibration, ...]
    silent: frozenset[str]
    maintenance: tuple[MaintenanceStretch, ...]
    national_rate: float | None
    block_rates: Mapping[str, float]
    top10: Mapping[str, tuple[str, ...]]  # block -> codes in published order
    top10_period: Mapping[str, str]  # block -> the period the top 10 was published for
    under10: Mapping[str, tuple[str, ...]]  # block -> codes published under 10 %
    traffic: TrafficShares
    # Issue 14: indicator name (full_online_procedures, full_online_procedures_used) -> scope
    # (national, ministry, province) -> published rate; and the online dossiers received
    # through the national portal in the reference period (full scale). Empty / None: the
    # profile generates no catalogue and no portal fields.
    procedure_rates: Mapping[str, Mapping[str, float]]
    received_national_portal: int | None
    sources: tuple[Mapping[str, Any], ...]

    @classmethod
    def load(cls, profile: str, registry: Registry | None = None) -> Calibration:
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
        text = resources.files("streams").joinpath(f"data/calibration-{profile}.json").read_text(encoding="utf-8")
        return cls.from_document(json.loads(text), registry or Registry.load())

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], registry: Registry) -> Calibration:
        units = []
        for entry in doc["agencies"]:
            agency = registry.get(entry["code"])
            if agency is None or agency.block != entry["block"]:
                raise ConfigError(f"calibration {doc['profile']}: {entry['code']} is not a {entry['block']} of the registry")
            band = tuple(entry["band"]) if entry.get("band") is not None else None
            rate = float(entry["full_online_rate"])
            if band is not None and not band[0] <= rate <= band[1]:
                raise ConfigError(f"calibration {doc['profile']}: {entry['code']} rate {rate} outside its band {band}")
            units.append(UnitCalibration(entry["code"], entry["block"], int(entry["dossiers"]), rate,
                                         bool(entry["rate_published"]), entry.get("rank"), band))  # type: ignore[arg-type]
        published = doc.get("published", {})
        traffic = {k: v for k, v in doc["traffic"].items() if k != "note"}
        calibration = cls(
            profile=doc["profile"],
            title=doc["title"],
            reference_period=parse_period(doc["reference_period"]),
            default_period=doc["default_period"],
            units=tuple(units),
            silent=frozenset(doc.get("silent", ())),
            maintenance=tuple(
                MaintenanceStretch(m["agency"], date.fromisoformat(m["from"]), date.fromisoformat(m["until"]), m["reason"])
                for m in doc.get("maintenance", ())
            ),
            national_rate=published.get("national"),
            block_rates=dict(published.get("blocks", {})),
            top10={block: tuple(codes) for block, codes in published.get("top10", {}).items()},
            top10_period=dict(published.get("top10_period", {})),
            under10={block: tuple(codes) for block, codes in published.get("under10", {}).items()},
            traffic=TrafficShares(**traffic),
            procedure_rates={name: {"national": published[name]["national"], **published[name]["blocks"]}
                             for name in PROCEDURE_INDICATORS if name in published},
            received_national_portal=published.get("received_national_portal"),
            sources=tuple(doc.get("sources", ())),
        )
        known = {u.code for u in units}
        for code in calibration.silent | {m.agency for m in calibration.maintenance}:
            if code not in registry:
                raise ConfigError(f"calibration {calibration.profile}: {code} is not in the registry")
        for block, codes in (*calibration.top10.items(), *calibration.under10.items()):
            missing = [c for c in codes if c not in known]
            if missing:
                raise ConfigError(f"calibration {calibration.profile}: published {block} units without data: {missing}")
        return calibration

    def unit(self, code: str) -> UnitCalibration:
        return next(u for u in self.units if u.code == code)

    def ministry_share(self) -> float | None:
        """The share of the ministries in the resolved dossiers implied by the published rates."""
        if self.national_rate is None or set(self.block_rates) != set(BLOCKS):
            return None
        m, p = self.block_rates["ministry"], self.block_rates["province"]
        return (self.national_rate - p) / (m - p)

    def ministry_procedure_share(self, indicator: str) -> float:
        """The ministries' share of the procedures behind a published procedure indicator (1 or
        2) that the published national and block rates imply."""
        rates = self.procedure_rates[indicator]
        m, p = rates["ministry"], rates["province"]
        return (rates["national"] - p) / (m - p)


@dataclass(frozen=True, slots=True)
class UnitPlan:
    code: str
    block: str
    resolved: int  # resolved dossiers in the window
    full_online: int  # of which fully online (exact)

    @property
    def rate(self) -> float | None:
        return self.full_online / self.resolved if self.resolved else None


@dataclass(frozen=True, slots=True)
class Plan:
    units: tuple[UnitPlan, ...]

    def by_code(self) -> dict[str, UnitPlan]:
        return {u.code: u for u in self.units}

    def totals(self, block: str | None = None) -> tuple[int, int]:
        chosen = [u for u in self.units if block is None or u.block == block]
        return sum(u.full_online for u in chosen), sum(u.resolved for u in chosen)

    def rate(self, block: str | None = None) -> float | None:
        full, resolved = self.totals(block)
        return full / resolved if resolved else None


def plan(
    calibration: Calibration,
    window_days: float,
    scale: float,
    min_resolved_published: int = 200,
    min_resolved: int = 100,
    active: Sequence[str] | None = None,
) -> Plan:
    """Resolved and fully-online dossiers per unit for a window of `window_days` days.

    `active`: the units that send traffic in the window (default: all but the silent ones).
    """
    if scale <= 0:
        raise ConfigError("--scale must be positive")
    active_codes = set(active) if active is not None else {u.code for u in calibration.units} - calibration.silent
    reference_days = (calibration.reference_period.last_day - calibration.reference_period.first_day).days + 1
    units = [u for u in calibration.units if u.code in active_codes]
    wanted = {u.code: u.dossiers * scale * window_days / reference_days for u in units}
    resolved = {u.code: max(_floor(u, min_resolved_published, min_resolved), round(wanted[u.code])) for u in units}
    for _ in range(60):
        _keep_block_shares(calibration, units, wanted, resolved)
        full: dict[str, int] = {}
        try:
            for block in BLOCKS:
                block_units = [u for u in units if u.block == block]
                if block_units:
                    full.update(_block_quotas(calibration, block, block_units, resolved))
        except _OutOfBand as short:
            _grow_helpers(calibration, [u for u in units if u.block == short.block], wanted, resolved, short)
            continue
        return Plan(tuple(UnitPlan(u.code, u.block, resolved[u.code], full[u.code]) for u in units))
    raise ConfigError(f"calibration {calibration.profile}: cannot reach the published block rates at this scale")


class _OutOfBand(Exception):
    """The chosen rates of a block cannot reach its published rate with the current volumes."""

    def __init__(self, block: str, target: float, missing: int, upward: bool) -> None:
        super().__init__(block)
        self.block, self.target, self.missing, self.upward = block, target, missing, upward


def _grow_helpers(calibration: Calibration, units: list[UnitCalibration], wanted: dict[str, float],
                  resolved: dict[str, int], short: _OutOfBand) -> None:
    """Floors made the small agencies weigh too much: give more dossiers to the agencies whose
    rates pull the block towards its published rate (in proportion to their real volume)."""
    sign = 1 if short.upward else -1
    helpers = [u for u in units if sign * (u.full_online_rate - short.target) > 0.02]
    if not helpers:
        raise ConfigError(f"calibration {calibration.profile}: no {short.block} rate can reach the block rate")
    pull = sum(abs(u.full_online_rate - short.target) * wanted[u.code] for u in helpers) / sum(wanted[u.code] for u in helpers)
    extra = math.ceil(1.2 * short.missing / pull) + 1
    for unit, more in zip(helpers, largest_remainder(extra, [wanted[u.code] for u in helpers])):
        resolved[unit.code] += more


def _floor(unit: UnitCalibration, min_published: int, min_resolved: int) -> int:
    """Fewest resolved dossiers of a unit: `min_published` for a published rate (200 gives it
    within 0.25 point), else `min_resolved`, but enough to land inside its band."""
    if unit.band is None:
        return min_published
    return max(min_resolved, math.ceil(2 / max(unit.band[1] - unit.band[0], 1e-3)))


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights`, as integers that add up to `total` exactly."""
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in weights]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def even_split(total: int, weights: Sequence[float], phase: float) -> list[int]:
    """`total` split in proportion to `weights` by rounding the running share (systematic
    sampling): the parts add up to `total` exactly, and every part and every running sum of
    parts is within one of its exact share. Unlike the largest remainder, whose ties all go to
    the first items, a run of equal weights gets its extras evenly spaced along it; `phase`
    (in [0, 1)) says where they fall, so that units given different phases do not all round
    the same items up."""
    if not 0.0 <= phase < 1.0:
        raise InvariantError(f"phase {phase} outside [0, 1)")
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return [0] * len(weights)
    last = max(index for index, weight in enumerate(weights) if weight > 0)
    parts = []
    running = 0.0
    done = 0
    for index, weight in enumerate(weights):
        if weight <= 0:
            parts.append(0)
            continue
        running += weight
        # The last bound is the total itself: a float running share may fall short of it
        # (7 × 2.35 / 2.35 is 6.999… in floats), and nothing of it may go to a weight of 0.
        bound = total if index == last else min(total, math.floor(total * running / weight_sum + phase))
        parts.append(bound - done)
        done = bound
    return parts


def unit_phase(index: int) -> float:
    """The rounding phase of the `index`-th unit for `even_split`: the golden-ratio sequence,
    which spreads any number of units evenly over [0, 1)."""
    return (index * _GOLDEN) % 1.0


_GOLDEN = (math.sqrt(5) - 1) / 2


def _keep_block_shares(calibration: Calibration, units: list[UnitCalibration], wanted: dict[str, float],
                       resolved: dict[str, int]) -> None:
    share = calibration.ministry_share()
    if share is None:
        return
    ministries = sum(resolved[u.code] for u in units if u.block == "ministry")
    provinces = sum(resolved[u.code] for u in units if u.block == "province")
    if not ministries or not provinces:
        return
    if ministries / (ministries + provinces) < share:
        grow, extra = "ministry", math.ceil(share * provinces / (1 - share)) - ministries
    else:
        grow, extra = "province", math.ceil((1 - share) * ministries / share) - provinces
    growing = [u for u in units if u.block == grow]
    for unit, more in zip(growing, largest_remainder(max(extra, 0), [wanted[u.code] for u in growing])):
        resolved[unit.code] += more


def _block_quotas(calibration: Calibration, block: str, units: list[UnitCalibration],
                  resolved: dict[str, int]) -> dict[str, int]:
    full: dict[str, int] = {}
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for u in units:
        n = resolved[u.code]
        f = _half_up(u.full_online_rate * n)
        if u.band is not None:
            low[u.code], high[u.code] = math.ceil(u.band[0] * n - 1e-9), math.floor(u.band[1] * n + 1e-9)
            if low[u.code] > high[u.code]:
                raise ConfigError(f"{u.code}: {n} resolved dossiers are too few for its band {u.band}; raise the floor")
            f = min(max(f, low[u.code]), high[u.code])
        full[u.code] = f
    target_rate = calibration.block_rates.get(block)
    if target_rate is None:
        return full
    n_block = sum(resolved[u.code] for u in units)
    gap = _half_up(target_rate * n_block) - sum(full.values())
    flexible = [u.code for u in units if u.band is not None]
    room = [(high[c] - full[c]) if gap > 0 else (full[c] - low[c]) for c in flexible]
    if abs(gap) > sum(room):
        raise _OutOfBand(block, target_rate, abs(gap) - sum(room), gap > 0)
    step = 1 if gap > 0 else -1
    for code, moved in zip(flexible, _capped_split(abs(gap), room)):
        full[code] += step * moved
    return full


def _capped_split(total: int, capacities: Sequence[int]) -> list[int]:
    """`total` split in proportion to `capacities`, never more than a capacity (total <= sum)."""
    parts = largest_remainder(total, capacities)
    # Largest remainder in proportion to the capacities never exceeds one: floor(total*c/C) + 1
    # <= c whenever the remainder is positive, because total <= C.
    if any(p > c for p, c in zip(parts, capacities)):
        raise InvariantError(f"largest remainder split {parts} exceeds the capacities {list(capacities)}")
    return parts
