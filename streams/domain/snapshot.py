"""Snapshot shapes (contract section 5) as pure functions: reading a snapshot hash back
into counts, and an agency's connection status."""

from __future__ import annotations

from collections.abc import Mapping

from streams.domain.catalogue import PROCEDURE_FIGURES
from streams.domain.dossier import COUNT_FIELDS
from streams.domain.instants import US_PER_S

# The integer fields of the agency and block hashes: the counts of the contract, then the
# procedure figures of the catalogue (streams/domain/catalogue.py). Both are sums over the
# agencies of a block.
SNAPSHOT_COUNT_FIELDS: tuple[str, ...] = COUNT_FIELDS + PROCEDURE_FIGURES

AGENCY_STATUSES: tuple[str, ...] = ("connected", "silent", "maintenance", "never")


def counts_from_hash(fields: Mapping[str | bytes, str | bytes]) -> dict[str, int]:
    """The integer counts of a snapshot hash as read back from Redis."""
    out: dict[str, int] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        if name in SNAPSHOT_COUNT_FIELDS:
            out[name] = int(raw_value)
    return out


def agency_status(
    last_event_us: int | None, last_heartbeat_us: int | None, now_us: int, silent_after_s: float, in_maintenance: bool
) -> str:
    if in_maintenance:
        return "maintenance"
    seen = max((t for t in (last_event_us, last_heartbeat_us) if t is not None), default=None)
    if seen is None:
        return "never"
    return "connected" if now_us - seen <= silent_after_s * US_PER_S else "silent"
