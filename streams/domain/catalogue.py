"""The procedure catalogue (issue 14): each agency's administrative procedures (TTHC) and the
service level at which each is offered, over time; and the procedure-level indicators that
need it (pure).

A record of the compacted topic `emc.procedure-catalogue.v1` is keyed `{agency}:{procedure}`
and holds the procedure's whole level history, so that compaction, which keeps only the
latest record of a key, never loses the level a past period had:

    {"schema": "emc.procedure-catalogue.v1", "agency_code": "T01", "procedure_code": "1.00309",
     "name": "Cấp phiếu lý lịch tư pháp", "level": "full_online", "valid_from": "2025-04-15",
     "history": [{"level": "partial_online", "valid_from": "2024-01-01"}]}

`level` and `valid_from` are the level in force from that day on; `history` (optional) the
earlier ones, each in force from its `valid_from` up to the next. Before the first
`valid_from` the procedure is not in force. The level `withdrawn` ends it: from that
`valid_from` on the procedure is not in force, and the periods before keep it (a later level
brings it back). A tombstone (null value) erases the procedure and its history, as if it had
never been catalogued (for a record sent by mistake): a withdrawal is a record, because a
compacted topic drops a tombstone, and with it any date it could carry, after a while.

Figures per agency and period, from the catalogue as at the period's last day (a level
change applies from its `valid_from`: to the periods whose last day is on or after it):

| figure | counts |
|---|---|
| procedures_in_force | procedures in force |
| full_online_procedures_in_force | of those, at `full_online` |
| procedures_with_dossiers | procedures with at least one dossier received in the period (catalogued or not) |
| full_online_procedures_with_online_dossiers | of those, at `full_online` with at least one dossier received online |
| procedures_not_in_catalogue | procedures with dossiers but not in force in the catalogue |

Indicator 1 needs no dossier: an agency whose catalogue has procedures in force at a month's,
quarter's or year's last day has figures for that period even when it received nothing in it
(`in_force_pairs`; the workers publish them for every period any worker has figures for).

Indicator 1 is full_online_procedures_in_force / procedures_in_force, indicator 2
full_online_procedures_with_online_dossiers / procedures_with_dossiers. Procedures belong to
one agency, so a block's figures are the sums of its agencies'.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from streams.domain.compacted import decode_key, decode_value
from streams.domain.dossier import PROCEDURE_RECEIVED_ONLINE_PREFIX, PROCEDURE_RECEIVED_PREFIX
from streams.domain.events import PROCEDURE_CODE_MAX_LENGTH
from streams.domain.periods import parse_period
from streams.domain.registry import Registry
from streams.errors import InvalidCatalogueRecord

CATALOGUE_SCHEMA = "emc.procedure-catalogue.v1"
SERVICE_LEVELS: tuple[str, ...] = ("full_online", "partial_online", "not_online")
WITHDRAWN = "withdrawn"  # a level change that ends the procedure (issue 14: history kept)
RECORD_LEVELS: tuple[str, ...] = (*SERVICE_LEVELS, WITHDRAWN)
NAME_MAX_LENGTH = 1000
MAX_RECORD_BYTES = 64 * 1024

PROCEDURE_FIGURES: tuple[str, ...] = (
    "procedures_in_force",
    "full_online_procedures_in_force",
    "procedures_with_dossiers",
    "full_online_procedures_with_online_dossiers",
    "procedures_not_in_catalogue",
)


@dataclass(frozen=True, slots=True)
class LevelChange:
    valid_from: date
    level: str


@dataclass(frozen=True, slots=True)
class Procedure:
    agency_code: str
    procedure_code: str
    name: str
    levels: tuple[LevelChange, ...]  # by valid_from, strictly increasing; at least one

    @property
    def key(self) -> str:
        return catalogue_key(self.agency_code, self.procedure_code)

    def level_on(self, day: date) -> str | None:
        """The level in force on `day`; None before the first valid_from and while withdrawn."""
        levels = self.levels
        if len(levels) == 1:  # most procedures never change level
            return levels[0].level if levels[0].valid_from <= day and levels[0].level != WITHDRAWN else None
        starts = [change.valid_from for change in levels]
        index = bisect.bisect_right(starts, day) - 1
        if index < 0 or self.levels[index].level == WITHDRAWN:
            return None
        return self.levels[index].level

    def to_json(self) -> dict[str, Any]:
        latest = self.levels[-1]
        doc: dict[str, Any] = {
            "schema": CATALOGUE_SCHEMA, "agency_code": self.agency_code, "procedure_code": self.procedure_code,
            "name": self.name, "level": latest.level, "valid_from": latest.valid_from.isoformat(),
        }
        if len(self.levels) > 1:
            doc["history"] = [{"level": c.level, "valid_from": c.valid_from.isoformat()} for c in self.levels[:-1]]
        return doc

    def with_level(self, name: str, change: LevelChange) -> Procedure:
        """This procedure with `change` added (replacing a change of the same day) and `name`."""
        by_day = {c.valid_from: c for c in self.levels}
        by_day[change.valid_from] = change
        return Procedure(self.agency_code, self.procedure_code, name, tuple(by_day[d] for d in sorted(by_day)))


def catalogue_key(agency: str, procedure_code: str) -> str:
    return f"{agency}:{procedure_code}"


def encode_procedure(procedure: Procedure) -> tuple[bytes, bytes]:
    """The message key and value of a catalogue record."""
    return procedure.key.encode("utf-8"), orjson.dumps(procedure.to_json())


# -- validation ----------------------------------------------------------------------------

def _text(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCatalogueRecord(f"{name}: expected a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise InvalidCatalogueRecord(f"{name}: longer than {max_length} characters")
    return value


def parse_level(value: object) -> str:
    if value not in RECORD_LEVELS:
        raise InvalidCatalogueRecord(f"level: {value!r} is not one of {', '.join(RECORD_LEVELS)}")
    return value  # type: ignore[return-value]


def parse_day(name: str, value: object) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidCatalogueRecord(f"{name}: {value!r} is not a date YYYY-MM-DD")


def make_procedure(registry: Registry, agency: object, code: object, name: object,
                   levels: Iterable[tuple[object, object]]) -> Procedure:
    """A validated procedure from raw values; `levels` are (level, valid_from) pairs."""
    if not isinstance(agency, str) or agency not in registry:
        raise InvalidCatalogueRecord(f"agency_code: unknown agency {agency!r} (see `emc registry list`)")
    procedure_code = _text("procedure_code", code, PROCEDURE_CODE_MAX_LENGTH)
    if procedure_code != procedure_code.strip():
        raise InvalidCatalogueRecord(f"procedure_code: {procedure_code!r} has leading or trailing spaces")
    changes: dict[date, LevelChange] = {}
    for level, valid_from in levels:
        change = LevelChange(parse_day("valid_from", valid_from), parse_level(level))
        if change.valid_from in changes:
            raise InvalidCatalogueRecord(f"valid_from: two levels from {change.valid_from.isoformat()}")
        changes[change.valid_from] = change
    if not changes:
        raise InvalidCatalogueRecord("a procedure needs a level and valid_from")
    return Procedure(agency, procedure_code, _text("name", name, NAME_MAX_LENGTH).strip(),
                     tuple(changes[d] for d in sorted(changes)))


_RECORD_FIELDS = {"schema", "agency_code", "procedure_code", "name", "level", "valid_from"}


def procedure_from_json(registry: Registry, obj: object) -> Procedure:
    if not isinstance(obj, dict) or obj.get("schema") != CATALOGUE_SCHEMA:
        raise InvalidCatalogueRecord(f"the value is not an {CATALOGUE_SCHEMA} object")
    missing = sorted(_RECORD_FIELDS - obj.keys())
    if missing:
        raise InvalidCatalogueRecord(f"record without {', '.join(missing)}")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) and {"level", "valid_from"} <= h.keys()
                                                for h in history):
        raise InvalidCatalogueRecord("history: expected a list of {level, valid_from} objects")
    procedure = make_procedure(registry, obj["agency_code"], obj["procedure_code"], obj["name"],
                               [*((h["level"], h["valid_from"]) for h in history), (obj["level"], obj["valid_from"])])
    if procedure.levels[-1].valid_from.isoformat() != obj["valid_from"]:
        raise InvalidCatalogueRecord("history: every valid_from must be before the record's valid_from")
    return procedure


def parse_catalogue_message(registry: Registry, key: bytes | None, value: bytes | None) -> tuple[str, Procedure | None]:
    """(key, procedure) of a message of the catalogue topic; procedure None for a tombstone.

    Raises InvalidCatalogueRecord for a message that is not a valid record, or whose key does
    not name the procedure of its value.
    """
    text_key = decode_key(key, InvalidCatalogueRecord, "a catalogue record needs a key AGENCY:PROCEDURE_CODE")
    agency, _, code = text_key.partition(":")
    if not agency or not code:
        raise InvalidCatalogueRecord(f"key {text_key!r}: expected AGENCY:PROCEDURE_CODE")
    if value is None:
        return text_key, None
    obj = decode_value(text_key, value, MAX_RECORD_BYTES, InvalidCatalogueRecord)
    try:
        procedure = procedure_from_json(registry, obj)
    except InvalidCatalogueRecord as exc:
        raise InvalidCatalogueRecord(f"key {text_key!r}: {exc}") from None
    if procedure.key != text_key:
        raise InvalidCatalogueRecord(f"key {text_key!r} does not match its record (expected {procedure.key!r})")
    return text_key, procedure


# -- the catalogue a worker keeps ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Catalogue:
    """The latest record of every procedure, by agency."""

    by_agency: Mapping[str, Mapping[str, Procedure]] = field(default_factory=dict)
    # (agency, period) -> `_in_force_at_end_of`; filled as asked (mutable inside a frozen value)
    _in_force_memo: dict[tuple[str, str], tuple[date, int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @staticmethod
    def of(procedures: Iterable[Procedure]) -> Catalogue:
        by_agency: dict[str, dict[str, Procedure]] = {}
        for procedure in procedures:
            by_agency.setdefault(procedure.agency_code, {})[procedure.procedure_code] = procedure
        return Catalogue(by_agency)

    def __len__(self) -> int:
        return sum(len(procedures) for procedures in self.by_agency.values())

    def procedures(self) -> list[Procedure]:
        return [p for agency in sorted(self.by_agency) for _, p in sorted(self.by_agency[agency].items())]

    def get(self, agency: str, procedure_code: str) -> Procedure | None:
        return self.by_agency.get(agency, {}).get(procedure_code)

    def agencies_changed_since(self, earlier: Catalogue) -> set[str]:
        return {agency for agency in self.by_agency.keys() | earlier.by_agency.keys()
                if self.by_agency.get(agency) != earlier.by_agency.get(agency)}

    def figures(self, agency: str, period: str, procedure_counts: Mapping[str, int]) -> dict[str, int]:
        """The PROCEDURE_FIGURES of an agency and period, from its per-procedure counts (the
        counter row's, PROCEDURE_*_PREFIX + code -> n, zero counts absent)."""
        last_day, in_force, full_online_in_force = self._in_force_at_end_of(agency, period)
        catalogued = self.by_agency.get(agency, {})
        with_dossiers = not_in_catalogue = full_online_with_online = 0
        received, online = PROCEDURE_RECEIVED_PREFIX, PROCEDURE_RECEIVED_ONLINE_PREFIX
        for name, n in procedure_counts.items():
            if n <= 0:
                continue
            if name.startswith(received):
                with_dossiers += 1
                procedure = catalogued.get(name[len(received):])
                if procedure is None or procedure.level_on(last_day) is None:
                    not_in_catalogue += 1
            elif name.startswith(online):
                procedure = catalogued.get(name[len(online):])
                if procedure is not None and procedure.level_on(last_day) == "full_online":
                    full_online_with_online += 1
        return {
            "procedures_in_force": in_force,
            "full_online_procedures_in_force": full_online_in_force,
            "procedures_with_dossiers": with_dossiers,
            "full_online_procedures_with_online_dossiers": full_online_with_online,
            "procedures_not_in_catalogue": not_in_catalogue,
        }

    def _in_force_at_end_of(self, agency: str, period: str) -> tuple[date, int, int]:
        """(the period's last day, procedures of the agency in force then, of those at
        full_online). A catalogue never changes (a new record makes a new one), so this is
        remembered: every snapshot tick asks for the same agencies and current periods."""
        known = self._in_force_memo.get((agency, period))
        if known is None:
            if len(self._in_force_memo) >= IN_FORCE_MEMO_SIZE:
                self._in_force_memo.clear()  # a backlog asks for many past periods once each
            last_day = parse_period(period).last_day
            levels = [level for p in self.by_agency.get(agency, {}).values()
                      if (level := p.level_on(last_day)) is not None]
            known = self._in_force_memo[(agency, period)] = (
                last_day, len(levels), sum(1 for level in levels if level == "full_online"))
        return known


IN_FORCE_MEMO_SIZE = 50_000  # entries of a few dozen bytes each


CATALOGUE_ONLY_WINDOWS: tuple[str, ...] = ("month", "quarter", "year")  # indicator 1 without dossiers


def catalogue_only_periods(periods: Iterable[str]) -> set[str]:
    """The months, quarters and years among `periods` (days are left out: the bulletin's
    indicator 1 is monthly at the finest, and a hash per agency and day would be many)."""
    return {p for p in periods if parse_period(p).window in CATALOGUE_ONLY_WINDOWS}


def in_force_pairs(catalogue: Catalogue, registry: Registry, agencies: Iterable[str],
                   periods: Iterable[str]) -> list[tuple[str, str]]:
    """(agency, period) for each of `agencies` valid during the period whose catalogue has a
    procedure in force at the period's last day: they have indicator 1 whether or not they
    received dossiers then."""
    out = []
    chosen = [(p, parse_period(p)) for p in sorted(set(periods))]
    for code in agencies:
        procedures = catalogue.by_agency.get(code)
        agency = registry.get(code)
        if not procedures or agency is None:
            continue
        for text, period in chosen:
            valid = agency.valid_from <= period.last_day and (agency.valid_to is None or agency.valid_to >= period.first_day)
            if valid and any(p.level_on(period.last_day) is not None for p in procedures.values()):
                out.append((code, text))
    return out


# -- importing a file ----------------------------------------------------------------------

# Column names of an import file (CSV header or JSON-lines keys): the national procedure
# database's export names, and the record's own names.
_COLUMN_ALIASES = {
    "code": "procedure_code", "procedure_code": "procedure_code", "name": "name",
    "agency": "agency_code", "agency_code": "agency_code", "level": "level", "valid_from": "valid_from",
}
IMPORT_COLUMNS: tuple[str, ...] = ("procedure_code", "name", "agency_code", "level", "valid_from")


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int  # 1-based line of the file
    fields: Mapping[str, object]


def import_row(line: int, raw: Mapping[str, object]) -> ImportRow:
    """Normalise an import row's column names (CSV `code, name, agency, level, valid_from`, or
    the record's `procedure_code`, `agency_code`); strings are stripped of spaces."""
    fields: dict[str, object] = {}
    for name, value in raw.items():
        column = _COLUMN_ALIASES.get(str(name).strip().lower()) if name is not None else None
        if column is not None:
            fields[column] = value.strip() if isinstance(value, str) else value
    return ImportRow(line, fields)


def merge_import(registry: Registry, catalogue: Catalogue, rows: Iterable[ImportRow]) -> list[Procedure]:
    """The records to send for an import: each procedure of the rows with the rows' levels
    merged into the history it already has on the topic (a row for a day the history has
    replaces that day's level), in key order; only those that change.

    All or nothing: raises InvalidCatalogueRecord listing every bad row with its line number.
    """
    errors: list[str] = []
    merged: dict[str, Procedure] = {}
    seen_at: dict[tuple[str, date], int] = {}
    for row in rows:
        missing = [c for c in IMPORT_COLUMNS if row.fields.get(c) in (None, "")]
        if missing:
            errors.append(f"line {row.line}: missing {', '.join(missing)}")
            continue
        f = row.fields
        try:
            single = make_procedure(registry, f["agency_code"], f["procedure_code"], f["name"],
                                    [(f["level"], f["valid_from"])])
        except InvalidCatalogueRecord as exc:
            errors.append(f"line {row.line}: {exc}")
            continue
        change = single.levels[0]
        first = seen_at.setdefault((single.key, change.valid_from), row.line)
        if first != row.line:
            errors.append(f"line {row.line}: {single.key} from {change.valid_from.isoformat()} already on line {first}")
            continue
        base = merged.get(single.key) or catalogue.get(single.agency_code, single.procedure_code)
        if base is None:
            merged[single.key] = single
        else:
            # The name of the latest level's row is the procedure's name.
            name = single.name if change.valid_from >= base.levels[-1].valid_from else base.name
            merged[single.key] = base.with_level(name, change)
    if errors:
        raise InvalidCatalogueRecord(f"{len(errors)} bad row(s), nothing imported:\n  " + "\n  ".join(errors))
    return [p for key, p in sorted(merged.items())
            if p != catalogue.get(p.agency_code, p.procedure_code)]
