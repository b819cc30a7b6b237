"""The agency registry (contract section 4): pure data, loaded from streams/data/registry.json."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
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

    def to_json_list(self) -> list[dict]:
        return [
            {"code": a.code, "name": a.name, "name_en": a.name_en, "short_name": a.short_name, "block": a.block,
             "valid_from": a.valid_from.isoformat(), "valid_to": a.valid_to.isoformat() if a.valid_to else None,
             "successor": a.successor}
            for a in self._agencies
        ]


def render_registry(registry: Registry, fmt: str, on: date | None = None) -> str:
    rows = [r for r, a in zip(registry.to_json_list(), registry) if on is None or a.is_valid_on(on)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2)
    lines = [f"{'code':<8} {'block':<9} {'name':<40} {'valid_from':<10} {'valid_to':<10} successor"]
    for r in rows:
        lines.append(f"{r['code']:<8} {r['block']:<9} {r['name']:<40} {r['valid_from']:<10} {r['valid_to'] or '':<10} {r['successor'] or ''}")
    return "\n".join(lines)
