"""What the snapshots contain (contract section 5), as pure functions of counts.

The Redis adapter writes these; the metrics collector and the report read the same shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from streams.domain.dossier import COUNT_FIELDS, full_online_rate

AGENCY_STATUSES: tuple[str, ...] = ("connected", "silent", "maintenance", "never")
BLOCKS: tuple[str, ...] = ("ministry", "province")


def rate_text(rate: float) -> str:
    """`full_online_rate` as the contract's decimal string with 6 places."""
    return f"{rate:.6f}"


def agency_hash(counts: Mapping[str, int], updated_at: datetime) -> dict[str, str]:
    """The fields of `emc:v1:agency:{code}:{period}` (and of a block hash)."""
    fields = {name: str(int(counts.get(name, 0))) for name in COUNT_FIELDS}
    rate = full_online_rate(int(counts.get("full_online", 0)), int(counts.get("resolved", 0)))
    if rate is not None:
        fields["full_online_rate"] = rate_text(rate)
    fields["updated_at"] = updated_at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return fields


def counts_from_hash(fields: Mapping[str | bytes, str | bytes]) -> dict[str, int]:
    """The integer counts of a snapshot hash as read back from Redis."""
    out: dict[str, int] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        if name in COUNT_FIELDS:
            out[name] = int(raw_value)
    return out


def has_any_count(counts: Mapping[str, int]) -> bool:
    return any(counts.get(name, 0) for name in COUNT_FIELDS)


def sum_counts(many: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNT_FIELDS, 0)
    for counts in many:
        for name in COUNT_FIELDS:
            total[name] += int(counts.get(name, 0))
    return total


def rank_scores(counts_by_agency: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Member -> full_online_rate, for agencies with resolved > 0 (the rank zset)."""
    scores: dict[str, float] = {}
    for agency, counts in counts_by_agency.items():
        rate = full_online_rate(int(counts.get("full_online", 0)), int(counts.get("resolved", 0)))
        if rate is not None:
            scores[agency] = rate
    return scores


def agency_status(
    last_event_us: int | None, last_heartbeat_us: int | None, now_us: int, silent_after_s: float, in_maintenance: bool
) -> str:
    if in_maintenance:
        return "maintenance"
    seen = max((t for t in (last_event_us, last_heartbeat_us) if t is not None), default=None)
    if seen is None:
        return "never"
    return "connected" if now_us - seen <= silent_after_s * 1_000_000 else "silent"
