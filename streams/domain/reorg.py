"""The 2025 reorganisation: a period's figures as-was or restated onto successors (issue 5, item 5).

- **as-was**: each agency as it was; what the workers write to Redis (an event counts for the
  agency code it names).
- **restated**: each agency's counts moved onto the unit that carries its figures on a chosen
  day (default: today), following `Registry.final_successor`: merged provinces are summed into
  the merged province, absorbed ministries (e.g. BKHDT and BHXH) into the absorbing one (BTC).
  Counts are integers and are summed; rates are recomputed from the sums, never averaged.

Both views give the same block and national totals (a successor is always in its
predecessor's block): only the units change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from streams.domain.registry import Registry

AS_WAS = "as-was"
RESTATED = "restated"
VIEWS = (AS_WAS, RESTATED)


def restate(
    counts: Mapping[str, Mapping[str, int]], registry: Registry, on: date
) -> tuple[dict[str, dict[str, int]], dict[str, tuple[str, ...]]]:
    """Counts summed onto the units valid on `on`.

    Returns (successor code -> summed counts, successor code -> the codes summed into it, in
    code order; only codes that had counts). Codes not in the registry are kept as they are.
    """
    summed: dict[str, dict[str, int]] = {}
    sources: dict[str, list[str]] = {}
    for code in sorted(counts):
        target = registry.final_successor(code, on) if code in registry else code
        row = summed.setdefault(target, {})
        for name, value in counts[code].items():
            row[name] = row.get(name, 0) + int(value)
        sources.setdefault(target, []).append(code)
    return summed, {code: tuple(codes) for code, codes in sources.items()}


def restated_units(registry: Registry, block: str, on: date) -> list[str]:
    """The units of the restated view: the block's units valid on `on`."""
    return [agency.code for agency in registry.by_block(block) if agency.is_valid_on(on)]
