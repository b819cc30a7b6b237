"""The agency registry (contract section 4): which codes exist, and on which days each one is valid.

Pure data and pure Python. The data is `streams/data/registry.json` (its schema is
`schemas/registry.v1.json`); it keeps the 2025 reorganisations as history: a unit that was merged
away keeps its code, with a `valid_to` and the `successor` that took it over the next day, so that
figures of any past period stay attached to the unit that produced them and can be restated onto
today's units by following successors.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from streams.errors import RegistryError

BLOCKS = ("ministry", "province")
NATIONAL = "national"
SCOPES = (NATIONAL, *BLOCKS)  # what a block hash or a target is of: the nation or a block
# Codes are Kafka message keys and Prometheus label values (contract section 1 and 5).
CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9_.-]{1,31}")
ISO_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class FormerName:
    """A name a unit bore until `until` (inclusive), when it was renamed without a new code."""

    until: date
    name: str
    name_en: str
    short_name: str


@dataclass(frozen=True, slots=True)
class Agency:
    """One code of the registry; `valid_from` and `valid_to` are Asia/Ho_Chi_Minh dates, both inclusive."""

    code: str
    name: str
    name_en: str
    short_name: str
    block: str
    valid_from: date
    valid_to: date | None
    successor: str | None
    aliases: tuple[str, ...] = ()
    former_names: tuple[FormerName, ...] = ()  # oldest first

    def is_valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def named_on(self, day: date) -> Agency:
        """The agency under the name it bore on `day`: a bulletin on 2024 names T46 Thừa Thiên
        Huế, the province it was until the city of Huế took its place (same code, same territory)."""
        for former in self.former_names:
            if day <= former.until:
                return replace(self, name=former.name, name_en=former.name_en, short_name=former.short_name)
        return self

    def to_json(self) -> dict[str, str | None]:
        """The object `emc registry list --format json` prints for this agency."""
        return {
            "code": self.code,
            "name": self.name,
            "name_en": self.name_en,
            "short_name": self.short_name,
            "block": self.block,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to is not None else None,
            "successor": self.successor,
        }


class Registry:
    """The agencies in file order, checked for consistency when built."""

    __slots__ = ("_agencies", "_by_code")

    def __init__(self, agencies: Iterable[Agency]) -> None:
        self._agencies = tuple(agencies)
        self._by_code: dict[str, Agency] = {}
        for agency in self._agencies:
            if agency.code in self._by_code:
                raise RegistryError(f"{agency.code}: code appears twice")
            self._by_code[agency.code] = agency
        # Every unit's own fields first, so that a bad date is reported on its unit, not on a predecessor.
        for agency in self._agencies:
            _check_fields(agency)
        for agency in self._agencies:
            _check_handover(agency, self._by_code)

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        """The registry at `path`, or the one shipped in the package."""
        try:
            if path is None:
                text = resources.files("streams").joinpath("data/registry.json").read_text(encoding="utf-8")
            else:
                text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"cannot read the registry: {exc}") from exc
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"the registry is not valid JSON: {exc}") from exc
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: Any) -> Registry:
        """A registry from the parsed JSON document (the shape of schemas/registry.v1.json)."""
        if not isinstance(document, dict) or not isinstance(document.get("agencies"), list):
            raise RegistryError("the registry must be an object with an 'agencies' list")
        source_ids = {source.get("id") for source in document.get("sources", []) if isinstance(source, dict)}
        return cls(_parse_agency(entry, index, source_ids) for index, entry in enumerate(document["agencies"]))

    def get(self, code: str) -> Agency | None:
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies)

    def __len__(self) -> int:
        return len(self._agencies)

    def __repr__(self) -> str:
        return f"Registry({len(self._agencies)} agencies)"

    def valid_on(self, day: date) -> list[Agency]:
        return [agency for agency in self._agencies if agency.is_valid_on(day)]

    def by_block(self, block: str) -> list[Agency]:
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
        return [agency for agency in self._agencies if agency.block == block]

    def successor_chain(self, code: str) -> list[str]:
        """`code` followed by its successor, that one's successor, and so on to a unit that has none.

        Finite: loading checked that each successor is valid the day after its predecessor ends, so
        `valid_to` strictly increases along a chain and no chain can loop.
        """
        agency = self._require(code)
        chain = [agency.code]
        while agency.successor is not None:
            agency = self._by_code[agency.successor]
            chain.append(agency.code)
        return chain

    def final_successor(self, code: str, on: date | None = None) -> str:
        """The unit that carries `code`'s figures on day `on`: `code` while it is valid (or not yet
        valid), else the successor it handed over to, followed as far as needed. Without `on`, the
        end of the chain."""
        agency = self._require(code)
        while agency.successor is not None and (on is None or _ended_before(agency, on)):
            agency = self._by_code[agency.successor]
        return agency.code

    def predecessors(self, code: str) -> list[str]:
        """The codes whose `successor` is `code`, in file order (what a merged unit was formed from)."""
        self._require(code)
        return [agency.code for agency in self._agencies if agency.successor == code]

    def to_json_list(self) -> list[dict[str, str | None]]:
        """Exactly the objects `emc registry list --format json` prints, in file order."""
        return [agency.to_json() for agency in self._agencies]

    def _require(self, code: str) -> Agency:
        agency = self._by_code.get(code)
        if agency is None:
            raise KeyError(code)
        return agency


def _ended_before(agency: Agency, day: date) -> bool:
    return agency.valid_to is not None and agency.valid_to < day


def _former_names(entries: list[Any]) -> tuple[FormerName, ...]:
    names = tuple(
        FormerName(until=_date(e["until"]), name=_name(e["name"]), name_en=_text(e["name_en"]), short_name=_name(e["short_name"]))
        for e in entries
    )
    if [n.until for n in names] != sorted({n.until for n in names}):
        raise ValueError("former_names must be in order of their distinct `until` dates, oldest first")
    return names


def _parse_agency(entry: Any, index: int, source_ids: set[str]) -> Agency:
    where = f"agency #{index}"
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: must be an object")
    where = f"agency #{index} ({entry.get('code', 'no code')})"
    try:
        aliases = entry.get("aliases", [])
        sources = entry["source"]
        former_names = entry.get("former_names", [])
        if not isinstance(aliases, list) or not isinstance(sources, list) or not isinstance(former_names, list):
            raise TypeError("aliases, source and former_names must be lists")
        unknown_sources = [source for source in sources if source not in source_ids]
        if unknown_sources:
            raise RegistryError(f"{where}: unknown source {', '.join(map(str, unknown_sources))}")
        return Agency(
            code=_text(entry["code"]),
            name=_name(entry["name"]),
            name_en=_text(entry["name_en"]),
            short_name=_name(entry["short_name"]),
            block=_text(entry["block"]),
            valid_from=_date(entry["valid_from"]),
            valid_to=None if entry["valid_to"] is None else _date(entry["valid_to"]),
            successor=None if entry["successor"] is None else _text(entry["successor"]),
            aliases=tuple(_name(alias) for alias in aliases),
            former_names=_former_names(former_names),
        )
    except KeyError as exc:
        raise RegistryError(f"{where}: missing field {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: {exc}") from exc


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _name(value: Any) -> str:
    # Stored NFC so that equal names compare equal whatever form the file or a bulletin used.
    return unicodedata.normalize("NFC", _text(value))


def _date(value: Any) -> date:
    # fromisoformat alone would also take '20250630' and week dates such as '2025-W27-2'.
    if not isinstance(value, str) or not ISO_DATE_PATTERN.fullmatch(value):
        raise ValueError(f"expected a YYYY-MM-DD date, got {value!r}")
    return date.fromisoformat(value)


def _check_fields(agency: Agency) -> None:
    if not CODE_PATTERN.fullmatch(agency.code):
        raise RegistryError(f"{agency.code!r}: a code must match {CODE_PATTERN.pattern} (ASCII, no spaces)")
    if agency.block not in BLOCKS:
        raise RegistryError(f"{agency.code}: block {agency.block!r} is not one of {', '.join(BLOCKS)}")
    if agency.valid_to is not None and agency.valid_to < agency.valid_from:
        raise RegistryError(f"{agency.code}: valid_to {agency.valid_to} is before valid_from {agency.valid_from}")


def _check_handover(agency: Agency, by_code: dict[str, Agency]) -> None:
    """A unit with a successor ends, and its successor is valid the very next day: no gap in which the
    unit's figures have nowhere to go."""
    if agency.successor is None:
        return
    successor = by_code.get(agency.successor)
    if successor is None:
        raise RegistryError(f"{agency.code}: successor {agency.successor} is not in the registry")
    if agency.valid_to is None:
        raise RegistryError(f"{agency.code}: has successor {agency.successor} but no valid_to")
    handover = agency.valid_to + timedelta(days=1)
    if not successor.is_valid_on(handover):
        raise RegistryError(
            f"{agency.code}: successor {successor.code} is not valid on {handover}, the day after valid_to"
        )
    if successor.block != agency.block:
        raise RegistryError(f"{agency.code}: successor {successor.code} is in another block")
