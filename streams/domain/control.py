"""Agency control records: per-agency targets and declared maintenance windows (pure, no I/O).

They travel on the compacted topic `emc.agency-control.v1` (schema
`schemas/agency-control.v1.json`). The message key names the thing a record is about, so that
compaction keeps the latest record of each thing:

    key `target:{AGENCY}:{PERIOD}`         value {"schema", "kind": "target", "agency", "period", "ratio", "set_at"}
    key `maintenance:{AGENCY}:{START}`     value {"schema", "kind": "maintenance", "agency", "from", "until",
                                                   "reason", "declared_at"}

START is the window's start in UTC, `YYYYMMDDTHHMMSSZ`: every declared window has its own key,
so that compaction keeps the windows that have ended too and a report on a past period can
say which units were in maintenance then (the bulletin of 2024 names Thừa Thiên Huế). Records
keyed `maintenance:{AGENCY}` (the first form, one window per agency) are still read.

A null value (a tombstone) removes the thing its key names; `emc targets clear AGENCY PERIOD`
sends one. `emc agency maintenance` works out what to send from the state it reads first
(`declaration_messages`, `clearing_messages`): a new window replaces the part of the
agency's other windows that it overlaps, and `--clear` ends the window in effect now (it is
kept, cut at now, as history) and removes the windows still to come.

`ControlState` is the latest record of every key, as an immutable snapshot that a worker
replaces whole when the topic brings something new.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, cast

import orjson

from streams.domain.compacted import decode_key, decode_value, tombstone
from streams.domain.events import rfc3339_to_us
from streams.domain.instants import local_date_of_us, utc_datetime_of_us
from streams.domain.periods import Period, parse_period, periods_of_day
from streams.domain.registry import Registry
from streams.errors import InvalidControlRecord, InvalidEvent

CONTROL_SCHEMA = "emc.agency-control.v1"
# Targets are set for a month, a quarter or a year (the windows that have rankings).
TARGET_WINDOWS: tuple[str, ...] = ("month", "quarter", "year")
MAX_REASON_LENGTH = 500
MAX_RECORD_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """An agency's own full-online target for one period."""

    agency: str
    period: str  # YYYY-MM, YYYY-Qn or YYYY
    window: str  # month, quarter or year
    ratio: float
    set_at: str  # RFC 3339

    @property
    def key(self) -> str:
        return target_key(self.agency, self.period)

    def to_json(self) -> dict[str, Any]:
        return {"schema": CONTROL_SCHEMA, "kind": "target", "agency": self.agency, "period": self.period,
                "ratio": self.ratio, "set_at": self.set_at}


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A declared maintenance window: in effect from `start` (inclusive) until `until` (exclusive)."""

    agency: str
    start: str  # RFC 3339 with offset, as declared
    until: str
    reason: str
    declared_at: str
    start_us: int
    until_us: int
    legacy_key: bool = False  # read from a record keyed `maintenance:{AGENCY}` (first form)

    @property
    def key(self) -> str:
        return maintenance_key(self.agency) if self.legacy_key else maintenance_window_key(self.agency, self.start_us)

    def active_at(self, now_us: int) -> bool:
        return self.start_us <= now_us < self.until_us

    @property
    def local_days(self) -> tuple[date, date]:
        """The first and last Asia/Ho_Chi_Minh day the window touches."""
        return local_date_of_us(self.start_us), local_date_of_us(self.until_us - 1)

    def overlaps(self, period: Period) -> bool:
        first, last = self.local_days
        return first <= period.last_day and period.first_day <= last

    def history_json(self) -> dict[str, str]:
        """One window of `emc:v1:maintenance-windows` and of the reports' maintenance lists."""
        return {"from": self.start, "until": self.until, "reason": self.reason, "declared_at": self.declared_at}

    def window_json(self) -> dict[str, str]:
        """The `maintenance` object of the agency's `emc:v1:agencies` document."""
        return {"from": self.start, "until": self.until, "reason": self.reason}

    def to_json(self) -> dict[str, Any]:
        return {"schema": CONTROL_SCHEMA, "kind": "maintenance", "agency": self.agency, "from": self.start,
                "until": self.until, "reason": self.reason, "declared_at": self.declared_at}


ControlRecord = Target | Maintenance


def target_key(agency: str, period: str) -> str:
    return f"target:{agency}:{period}"


def maintenance_key(agency: str) -> str:
    """The first key form, one window per agency (still read, no longer written)."""
    return f"maintenance:{agency}"


def maintenance_window_key(agency: str, start_us: int) -> str:
    return f"maintenance:{agency}:{utc_datetime_of_us(start_us):%Y%m%dT%H%M%SZ}"


# -- building and validating ---------------------------------------------------------------

def _agency(registry: Registry, code: object) -> str:
    if not isinstance(code, str) or code not in registry:
        raise InvalidControlRecord(f"unknown agency {code!r} (see `emc registry list`)")
    return code


def _timestamp(name: str, text: object) -> int:
    if not isinstance(text, str):
        raise InvalidControlRecord(f"{name}: expected an RFC 3339 timestamp with an offset, got {text!r}")
    try:
        return rfc3339_to_us(text)
    except InvalidEvent:
        raise InvalidControlRecord(
            f"{name}: {text!r} is not an RFC 3339 timestamp with an offset (e.g. 2025-05-01T08:00:00+07:00)"
        ) from None


def make_target(registry: Registry, agency: object, period: object, ratio: object, set_at: object) -> Target:
    """A valid target, or InvalidControlRecord saying what is wrong."""
    code = _agency(registry, agency)
    if not isinstance(period, str):
        raise InvalidControlRecord(f"period: expected a string, got {period!r}")
    try:
        parsed = parse_period(period)
    except ValueError as exc:
        raise InvalidControlRecord(str(exc)) from None
    if parsed.window not in TARGET_WINDOWS:
        raise InvalidControlRecord(f"period {period!r}: targets are set per month, quarter or year (YYYY-MM, YYYY-Qn, YYYY)")
    unit = registry.get(code)
    if unit is None:  # _agency checked it already
        raise InvalidControlRecord(f"unknown agency {code!r}")
    if not _overlaps(unit.valid_from, unit.valid_to, parsed.first_day, parsed.last_day):
        until = f" to {unit.valid_to.isoformat()}" if unit.valid_to else ""
        raise InvalidControlRecord(f"agency {code} is not valid in {period} (valid from {unit.valid_from.isoformat()}{until})")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or not 0 <= ratio <= 1:
        raise InvalidControlRecord(f"ratio must be a number between 0 and 1 (0.85 for 85 %), got {ratio!r}")
    _timestamp("set_at", set_at)  # a string, or it raised
    return Target(code, period, parsed.window, float(ratio), cast(str, set_at))


def make_maintenance(
    registry: Registry, agency: object, start: object, until: object, reason: object, declared_at: object
) -> Maintenance:
    """A valid maintenance window, or InvalidControlRecord saying what is wrong."""
    code = _agency(registry, agency)
    start_us = _timestamp("from", start)
    until_us = _timestamp("until", until)
    if until_us <= start_us:
        raise InvalidControlRecord(f"until ({until}) must be after from ({start})")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidControlRecord("reason: say why the agency is in maintenance (a non-empty text)")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidControlRecord(f"reason: at most {MAX_REASON_LENGTH} characters")
    _timestamp("declared_at", declared_at)  # like from and until: a string, or it raised
    return Maintenance(code, cast(str, start), cast(str, until), reason.strip(), cast(str, declared_at), start_us, until_us)


def _overlaps(valid_from: date, valid_to: date | None, first: date, last: date) -> bool:
    return valid_from <= last and (valid_to is None or first <= valid_to)


def encode_record(record: ControlRecord) -> tuple[bytes, bytes]:
    """The message key and value of a record."""
    return record.key.encode("utf-8"), orjson.dumps(record.to_json())


def parse_control_message(registry: Registry, key: bytes | None, value: bytes | None) -> tuple[str, ControlRecord | None]:
    """(key, record) of a message of the control topic; record None for a tombstone.

    Raises InvalidControlRecord for a message that is not a valid record, or whose key does
    not name the thing its value is about.
    """
    text_key = decode_key(key, InvalidControlRecord, "a control record needs a key")
    kind, _, rest = text_key.partition(":")
    if kind not in ("target", "maintenance") or not rest:
        raise InvalidControlRecord(f"key {text_key!r}: expected target:AGENCY:PERIOD or maintenance:AGENCY:START")
    if value is None:
        return text_key, None
    obj = decode_value(text_key, value, MAX_RECORD_BYTES, InvalidControlRecord)
    if not isinstance(obj, dict) or obj.get("schema") != CONTROL_SCHEMA:
        raise InvalidControlRecord(f"key {text_key!r}: the value is not an {CONTROL_SCHEMA} object")
    record = record_from_json(registry, obj)
    if isinstance(record, Maintenance) and text_key == maintenance_key(record.agency):
        record = replace(record, legacy_key=True)
    if record.key != text_key:
        raise InvalidControlRecord(f"key {text_key!r} does not match its record (expected {record.key!r})")
    return text_key, record


_FIELDS = {
    "target": {"schema", "kind", "agency", "period", "ratio", "set_at"},
    "maintenance": {"schema", "kind", "agency", "from", "until", "reason", "declared_at"},
}


def record_from_json(registry: Registry, obj: Mapping[str, Any]) -> ControlRecord:
    kind = obj.get("kind")
    if kind not in _FIELDS:
        raise InvalidControlRecord(f"kind must be 'target' or 'maintenance', got {kind!r}")
    missing = sorted(_FIELDS[kind] - obj.keys())
    if missing:
        raise InvalidControlRecord(f"{kind} record without {', '.join(missing)}")
    if kind == "target":
        return make_target(registry, obj["agency"], obj["period"], obj["ratio"], obj["set_at"])
    return make_maintenance(registry, obj["agency"], obj["from"], obj["until"], obj["reason"], obj["declared_at"])


# -- the state a worker keeps --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ControlState:
    """The latest target of every (agency, period) and the declared windows of every agency."""

    targets: Mapping[tuple[str, str], Target] = field(default_factory=lambda: MappingProxyType({}))
    # agency -> its declared windows (ended ones too), by start
    maintenance: Mapping[str, tuple[Maintenance, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, records: Iterable[ControlRecord]) -> ControlState:
        targets: dict[tuple[str, str], Target] = {}
        windows: dict[str, list[Maintenance]] = {}
        for record in records:
            if isinstance(record, Target):
                targets[(record.agency, record.period)] = record
            else:
                windows.setdefault(record.agency, []).append(record)
        return cls(MappingProxyType(targets), MappingProxyType({
            agency: tuple(sorted(found, key=lambda w: (w.start_us, w.until_us, w.key))) for agency, found in windows.items()
        }))

    @property
    def window_count(self) -> int:
        return sum(len(found) for found in self.maintenance.values())

    def maintenance_at(self, agency: str, now_us: int) -> Maintenance | None:
        """The agency's window in effect at `now_us` (the first by start), else None."""
        return next((w for w in self.maintenance.get(agency, ()) if w.active_at(now_us)), None)

    def pending_maintenance(self, agency: str, now_us: int) -> Maintenance | None:
        """The agency's window in effect now, else the next one to come, else None."""
        return self.maintenance_at(agency, now_us) or next(
            (w for w in self.maintenance.get(agency, ()) if now_us < w.start_us), None)

    def history_json(self) -> dict[str, list[dict[str, str]]]:
        """agency -> every declared window (the `emc:v1:maintenance-windows` hash)."""
        return {agency: [w.history_json() for w in found] for agency, found in sorted(self.maintenance.items())}

    def target(self, agency: str, period: str) -> float | None:
        found = self.targets.get((agency, period))
        return found.ratio if found is not None else None

    def targets_by_period(self) -> dict[str, dict[str, float]]:
        """period -> agency -> ratio (the `emc:v1:targets:{period}` hashes)."""
        out: dict[str, dict[str, float]] = {}
        for (agency, period), target in sorted(self.targets.items()):
            out.setdefault(period, {})[agency] = target.ratio
        return out


def agency_control_fields(state: ControlState, agency: str, now_us: int, month: str) -> dict[str, Any]:
    """The fields an agency's `emc:v1:agencies` document gets from the control state:
    `maintenance` ({from, until, reason} while the declared window has not ended, else null)
    and `target_ratio` (the agency's own target for the month `month`, else null)."""
    window = state.pending_maintenance(agency, now_us)
    return {"maintenance": window.window_json() if window is not None else None,
            "target_ratio": state.target(agency, month)}


def current_agency_targets(
    state: ControlState, agencies: Iterable[str], periods: Mapping[str, str]
) -> dict[tuple[str, str], float]:
    """(agency, window) -> ratio for the agencies' own targets whose period is the current
    period of its window (`periods`: window -> current period); `emc_target_ratio{scope=AGENCY}`."""
    out: dict[tuple[str, str], float] = {}
    for agency in agencies:
        for window in TARGET_WINDOWS:
            ratio = state.target(agency, periods[window])
            if ratio is not None:
                out[(agency, window)] = ratio
    return out


def maintenance_from_history(agency: str, doc: Mapping[str, Any]) -> Maintenance:
    """A window from its `history_json` form (as `emc:v1:maintenance-windows` holds it)."""
    return Maintenance(agency, doc["from"], doc["until"], doc.get("reason", ""), doc.get("declared_at", ""),
                       rfc3339_to_us(doc["from"]), rfc3339_to_us(doc["until"]))


# -- what `emc agency maintenance` sends -----------------------------------------------------

Message = tuple[bytes, bytes | None]


def _cut(window: Maintenance, until: str, until_us: int) -> Maintenance:
    return replace(window, until=until, until_us=until_us)


def declaration_messages(state: ControlState, window: Maintenance) -> list[Message]:
    """The messages that declare `window`: it replaces what it overlaps of the agency's other
    windows. One that starts earlier is cut at the new start (its past stays history); one
    that starts inside the new window is removed. Windows that do not overlap are kept."""
    out: list[Message] = []
    for old in state.maintenance.get(window.agency, ()):
        if old.key == window.key or old.until_us <= window.start_us or old.start_us >= window.until_us:
            continue
        if old.start_us < window.start_us:
            out.append(encode_record(_cut(old, window.start, window.start_us)))
        else:
            out.append(tombstone(old.key))
    out.append(encode_record(window))
    return out


def clearing_messages(state: ControlState, agency: str, now: str, now_us: int) -> list[Message]:
    """The messages of `--clear`: the window in effect ends now (kept as history, so reports on
    the period still show it) and the windows still to come are removed. Ended windows stay."""
    out: list[Message] = []
    for old in state.maintenance.get(agency, ()):
        if old.until_us <= now_us:
            continue
        if old.start_us < now_us:
            out.append(encode_record(_cut(old, now, now_us)))
        else:
            out.append(tombstone(old.key))
    return out


def withdrawal_messages(state: ControlState, agency: str, start_us: int) -> list[Message]:
    """The message of `--withdraw FROM`: the window that starts at that instant is removed as
    if never declared (a declaration made by mistake), past or not; the others stay."""
    return [tombstone(window.key) for window in state.maintenance.get(agency, ()) if window.start_us == start_us]


MAX_WINDOW_DAYS_MARKED = 400


def periods_touched(windows: Iterable[Maintenance]) -> set[str]:
    """The day, month, quarter and year periods the windows touch: the periods whose lists of
    units in maintenance change when these windows are declared or cleared. Past its first
    MAX_WINDOW_DAYS_MARKED days, a (mistakenly) long window marks its months, quarters and
    years and its last day, not every day."""
    out: set[str] = set()
    for window in windows:
        first, last = window.local_days
        day = first
        while day <= last:
            if (day - first).days < MAX_WINDOW_DAYS_MARKED or day == last:
                out.update(periods_of_day(day))
                day += timedelta(days=1)
            else:
                out.update(periods_of_day(day)[1:])  # month, quarter, year
                next_month = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
                day = min(next_month, last)
    return out
