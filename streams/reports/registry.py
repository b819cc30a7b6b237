"""`emc registry list`: the agency registry as JSON (contract section 4) or as a text table."""

from __future__ import annotations

import json
import unicodedata
from datetime import date

from streams.domain.registry import Agency, Registry
from streams.errors import ConfigError
from streams.reports.table import render_table

RENDER_FORMATS = ("json", "table")
TABLE_COLUMNS = ("code", "block", "name", "valid_from", "valid_to", "successor")


def render_registry(registry: Registry, fmt: str, on: date | None = None) -> str:
    """The registry as `emc registry list` prints it; with `on`, only the agencies valid that day."""
    agencies = [agency for agency in registry if on is None or agency.is_valid_on(on)]
    if fmt == "json":
        return json.dumps([agency.to_json() for agency in agencies], ensure_ascii=False, indent=2)
    if fmt == "table":
        return render_table(TABLE_COLUMNS, [_row(agency) for agency in agencies])
    raise ConfigError(f"unknown registry format {fmt!r}: use one of {', '.join(RENDER_FORMATS)}")


def _row(agency: Agency) -> tuple[str, ...]:
    return (
        agency.code,
        agency.block,
        unicodedata.normalize("NFC", agency.name),
        agency.valid_from.isoformat(),
        agency.valid_to.isoformat() if agency.valid_to is not None else "",
        agency.successor or "",
    )
