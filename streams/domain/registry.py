"""The agency registry (contract section 4): pure data, loaded from streams/data/registry.json."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

from streams.errors import RegistryError


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name: str
    name_en: str
    short_name: str
    block: str
    valid_from: date
    valid_to: date | None
    successor: str | None
    aliases: tuple[str, ...] = ()

    def is_valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class Registry:
    def __init__(self, agencies: list[Agency]) -> None:
        self._agencies = agencies
        self._by_code = {a.code: a for a in agencies}
        if len(self._by_code) != len(agencies):
            raise RegistryError("duplicate agency codes")
        for agency in agencies:
            _check(agency, self._by_code)

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        text = path.read_text("utf-8") if path else resources.files("streams").joinpath("data/registry.json").read_text("utf-8")
        data = json.loads(text)
        agencies = [
            Agency(
                code=a["code"], name=unicodedata.normalize("NFC", a["name"]), name_en=a.get("name_en", a["name"]),
                short_name=a.get("short_name", a["name"]), block=a["block"],
                valid_from=date.fromisoformat(a["valid_from"]),
                valid_to=date.fromisoformat(a["valid_to"]) if a.get("valid_to") else None,
                successor=a.get("successor"), aliases=tuple(a.get("aliases", ())),
            )
            for a in data["agencies"]
        ]
        return cls(agencies)

    def get(self, code: str) -> Agency | None:
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies)

    def __len__(self) -> int:
        return len(self._agencies)

    def valid_on(self, day: date) -> list[Agency]:
        return [a for a in self._agencies if a.is_valid_on(day)]

    def by_block(self, block: str) -> list[Agency]:
        return [a for a in self._agencies if a.block == block]

    def successor_chain(self, code: str) -> list[str]:
        """`code` and its successors, in order, up to the unit that has none."""
        chain = [code]
        while (agency := self._by_code.get(chain[-1])) is not None and agency.successor is not None:
            if agency.successor in chain:
                raise RegistryError(f"successor cycle through {agency.successor}")
            chain.append(agency.successor)
        return chain

    def final_successor(self, code: str) -> str:
        """The unit that `code`'s figures are restated onto today (itself when never merged)."""
        return self.successor_chain(code)[-1]

    def to_json_list(self) -> list[dict]:
        return [
            {"code": a.code, "name": a.name, "name_en": a.name_en, "short_name": a.short_name, "block": a.block,
             "valid_from": a.valid_from.isoformat(), "valid_to": a.valid_to.isoformat() if a.valid_to else None,
             "successor": a.successor}
            for a in self._agencies
        ]


def _check(agency: Agency, by_code: dict[str, Agency]) -> None:
    if agency.block not in ("ministry", "province"):
        raise RegistryError(f"{agency.code}: block {agency.block!r} is not ministry or province")
    if agency.valid_to is not None and agency.valid_to < agency.valid_from:
        raise RegistryError(f"{agency.code}: valid_to before valid_from")
    if agency.successor is None:
        return
    successor = by_code.get(agency.successor)
    if successor is None:
        raise RegistryError(f"{agency.code}: successor {agency.successor} is not in the registry")
    if agency.valid_to is None:
        raise RegistryError(f"{agency.code}: has a successor but no valid_to")
    if not successor.is_valid_on(agency.valid_to + timedelta(days=1)):
        raise RegistryError(f"{agency.code}: successor {successor.code} is not valid the day after {agency.valid_to}")


def _width(text: str) -> int:
    # Combining marks take no column; NFC text has few, but names typed in NFD have many.
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def render_registry(registry: Registry, fmt: str, on: date | None = None) -> str:
    rows = [r for r, a in zip(registry.to_json_list(), registry) if on is None or a.is_valid_on(on)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2)
    columns = ("code", "block", "name", "valid_from", "valid_to", "successor")
    cells = [[str(r[c]) if r[c] is not None else "" for c in columns] for r in rows]
    widths = [max(_width(c) for c in [name, *(row[i] for row in cells)]) for i, name in enumerate(columns)]
    lines = ["  ".join(_pad(name, w) for name, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(_pad(cell, w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)
