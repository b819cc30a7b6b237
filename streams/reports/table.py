"""The one text-table renderer (registry listing, targets, agency status, the report's rankings).

Columns are padded by terminal width, not by code points: Vietnamese names may carry their tone
marks as combining characters, and East Asian characters take two columns.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence


def display_width(text: str) -> int:
    """Terminal columns `text` takes: combining marks take none (a name typed in NFD carries its tone
    marks as separate code points), East Asian wide and fullwidth characters take two."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded to `width` columns, on the left when `right` (numbers)."""
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = (),
                indent: str = "") -> list[str]:
    """The header and rows as lines of columns two spaces apart, trailing spaces stripped;
    the columns whose index is in `right` are aligned right."""
    widths = [max(display_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [indent + "  ".join(pad(cell, widths[i], i in right) for i, cell in enumerate(row)).rstrip()
            for row in [header, *rows]]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned table as one string (no final newline)."""
    return "\n".join(table_lines(header, rows))


def percent_cell(value: float | None) -> str:
    """A ratio as a table cell: `85.0 %`, empty when unknown."""
    return "" if value is None else f"{value * 100:.1f} %"
