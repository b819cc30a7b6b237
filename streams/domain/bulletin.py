"""Published bulletins (issue 15): the frozen figures of a period as one JSON document, its
canonical form and SHA-256, and what changed since. Pure: no I/O.

A bulletin holds everything a report of the period is computed from (every agency's hash
fields, the block and national hashes, the agencies' own targets, statuses and maintenance
windows as they were) plus, for readers, the rankings and lists of both views. A report
rebuilt from it with the publication's time and day (`streams/reports/bulletins.py`) is the
same report, byte for byte, whatever arrived since.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

import orjson

from streams.domain.control import Maintenance, maintenance_from_history
from streams.domain.dossier import COUNT_FIELDS
from streams.domain.finality import EVENT_COUNT_FIELDS
from streams.domain.rankings import BlockRanking
from streams.domain.snapshot import SNAPSHOT_COUNT_FIELDS

BULLETIN_SCHEMA = "emc.bulletin.v1"
_KEY = re.compile(r"^(?P<period>[0-9]{4}(?:-Q[1-4]|-[0-9]{2}(?:-[0-9]{2})?)?):v(?P<version>[1-9][0-9]*)$")
# Hash fields that describe the hash rather than the figures: not frozen.
NOT_FROZEN = frozenset({"updated_at", "last_changed_at", "published_version"})


def bulletin_key(period: str, version: int) -> str:
    """`2024-12:v1`: the topic key, and the tail of the Redis key."""
    return f"{period}:v{version}"


def parse_bulletin_key(key: str) -> tuple[str, int] | None:
    match = _KEY.match(key)
    return (match["period"], int(match["version"])) if match else None


def frozen_fields(fields: Mapping[str | bytes, str | bytes]) -> dict[str, int | str]:
    """A snapshot hash as frozen in a bulletin: integers as integers, rates as their strings."""
    out: dict[str, int | str] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        if name in NOT_FROZEN:
            continue
        value = raw_value.decode() if isinstance(raw_value, bytes) else str(raw_value)
        out[name] = int(value) if name in COUNT_FIELDS or name in EVENT_COUNT_FIELDS else value
    return out


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the SHA-256 is taken over (without `sha256`)."""
    return orjson.dumps({k: v for k, v in doc.items() if k != "sha256"}, option=orjson.OPT_SORT_KEYS)


def sealed(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document with its `sha256`."""
    return {**doc, "sha256": hashlib.sha256(canonical_json(doc)).hexdigest()}


def seal_holds(doc: Mapping[str, Any]) -> bool:
    return doc.get("sha256") == hashlib.sha256(canonical_json(doc)).hexdigest()


@dataclass(frozen=True, slots=True)
class BulletinSummary:
    period: str
    version: int
    published_at: str
    note: str | None
    sha256: str

    @staticmethod
    def of(doc: Mapping[str, Any]) -> BulletinSummary:
        return BulletinSummary(doc["period"], int(doc["version"]), doc["published_at"], doc.get("note"), doc["sha256"])

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period, "version": self.version, "published_at": self.published_at,
                "note": self.note, "sha256": self.sha256}


def counts_of(fields: Mapping[str, Any], names: tuple[str, ...] = SNAPSHOT_COUNT_FIELDS) -> dict[str, int]:
    """The integer fields `names` of a snapshot hash kept in a bulletin (by default the counts
    and the procedure figures, as the report reads them from Redis)."""
    return {name: int(fields[name]) for name in names if name in fields}


def windows_of(doc: Mapping[str, Any]) -> dict[str, tuple[Maintenance, ...]]:
    return {code: tuple(maintenance_from_history(code, w) for w in windows)
            for code, windows in doc.get("maintenance_windows", {}).items()}


def published_on(doc: Mapping[str, Any]) -> date:
    return date.fromisoformat(doc["published_on"])


# -- what changed since ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgencyRestatement:
    """One agency whose counts differ from the published version."""

    code: str
    name: str
    block: str
    before: Mapping[str, int]  # the count fields that differ, as published
    now: Mapping[str, int]
    rate_before: Fraction | None
    rate_now: Fraction | None
    rank_before: int | None
    rank_now: int | None
    under_before: bool
    under_now: bool
    events: Mapping[str, int]  # event kinds since publication (EVENT_COUNT_FIELDS deltas)

    @property
    def rank_changed(self) -> bool:
        return self.rank_before != self.rank_now

    @property
    def under_changed(self) -> bool:
        return self.under_before != self.under_now


def _rate(counts: Mapping[str, int]) -> Fraction | None:
    resolved = counts.get("resolved", 0)
    return Fraction(counts.get("full_online", 0), resolved) if resolved > 0 else None


def _places(rankings: Mapping[str, BlockRanking]) -> tuple[dict[str, int], set[str]]:
    ranks, under = {}, set()
    for ranking in rankings.values():
        for entry in ranking.ranking:
            ranks[entry.unit.code] = entry.rank
        under |= {entry.unit.code for entry in ranking.under_threshold}
    return ranks, under


def restatements(
    before: Mapping[str, Mapping[str, Any]],
    now: Mapping[str, Mapping[str, Any]],
    rankings_before: Mapping[str, BlockRanking],
    rankings_now: Mapping[str, BlockRanking],
    names: Mapping[str, tuple[str, str]],  # code -> (name, block)
) -> list[AgencyRestatement]:
    """Every agency whose counts differ between two sets of agency hash fields, by code."""
    ranks_before, under_before = _places(rankings_before)
    ranks_now, under_now = _places(rankings_now)
    out = []
    for code in sorted(before.keys() | now.keys()):
        old, new = counts_of(before.get(code, {})), counts_of(now.get(code, {}))
        changed = _differ(before.get(code, {}), now.get(code, {}))
        if not changed:
            continue
        old_events = counts_of(before.get(code, {}), EVENT_COUNT_FIELDS)
        new_events = counts_of(now.get(code, {}), EVENT_COUNT_FIELDS)
        name, block = names.get(code, (code, ""))
        out.append(AgencyRestatement(
            code=code, name=name, block=block,
            before={f: old.get(f, 0) for f in changed}, now={f: new.get(f, 0) for f in changed},
            rate_before=_rate(old), rate_now=_rate(new),
            rank_before=ranks_before.get(code), rank_now=ranks_now.get(code),
            under_before=code in under_before, under_now=code in under_now,
            events={f: new_events.get(f, 0) - old_events.get(f, 0) for f in EVENT_COUNT_FIELDS},
        ))
    return out


def _differ(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    a, b = counts_of(old), counts_of(new)
    return sorted(f for f in COUNT_FIELDS if a.get(f, 0) != b.get(f, 0))


def restated_agency_count(before: Mapping[str, Mapping[str, Any]], now: Mapping[str, Mapping[str, Any]]) -> int:
    """How many agencies' counts differ (the gauge of restated agencies)."""
    return sum(1 for code in before.keys() | now.keys() if _differ(before.get(code, {}), now.get(code, {})))
