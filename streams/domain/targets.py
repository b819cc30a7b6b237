"""National targets for the full-online rate, shipped as data (streams/data/targets.json)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _targets_by_year() -> dict[int, dict[str, float]]:
    data = json.loads(resources.files("streams").joinpath("data/targets.json").read_text("utf-8"))
    return {int(year): {scope: float(v) for scope, v in scopes.items()} for year, scopes in data["targets"].items()}


def block_targets(year: int) -> dict[str, float]:
    """Targets of `national`, `ministry` and `province` in force in `year`.

    A year without its own targets keeps the latest earlier ones (the 2025 targets stand
    until new ones are published); a year before any target has none.
    """
    known = [y for y in _targets_by_year() if y <= year]
    return dict(_targets_by_year()[max(known)]) if known else {}


def shipped_targets() -> dict[int, dict[str, float]]:
    """Every year's block and national targets as shipped (`emc targets list`)."""
    return {year: dict(scopes) for year, scopes in sorted(_targets_by_year().items())}
