"""Finality of a period's figures (issue 15): pure rules, no I/O.

Beside its counts (contract section 3), every counter row of an agency and period counts the
events that changed them, by kind, so that a published figure's later changes can be accounted
for. An applied event reaches the rows of the periods whose counts it changes; a duplicate (it
changes nothing) the rows of the periods of its own `occurred_at` (Asia/Ho_Chi_Minh). Each row
counts an event once, by the state stage's per-row source-offset rule, so replays and crashes
never count an event twice.

- `events_applied`: applied events (not duplicates) that changed a count of the period;
- `events_after_close`: of those, applied after the period had ended (late for the period);
- `events_corrections`: of those, events with a `supersedes`;
- `events_voids`: of those, `voided` events;
- `events_duplicates`: events ignored as duplicates of an `event_id` already applied.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from streams.domain.instants import VN_TZ, us_of
from streams.domain.periods import parse_period

EVENT_COUNT_FIELDS: tuple[str, ...] = (
    "events_applied", "events_after_close", "events_corrections", "events_voids", "events_duplicates",
)

OPEN, CLOSED, PUBLISHED, RESTATED = "open", "closed", "published", "restated"
FINALITY_STATES: tuple[str, ...] = (OPEN, CLOSED, PUBLISHED, RESTATED)


@lru_cache(maxsize=4096)
def period_end_us(period: str) -> int:
    """The first microsecond after the period, Asia/Ho_Chi_Minh (UTC epoch microseconds)."""
    p = parse_period(period)
    end = datetime.combine(p.last_day + timedelta(days=1), datetime.min.time(), tzinfo=VN_TZ)
    return us_of(end)


def kind_increments(*, duplicate: bool, event_type: str, supersedes: str | None) -> tuple[str, ...]:
    """The event counts one event adds to every row it reaches, but `events_after_close`."""
    if duplicate:
        return ("events_duplicates",)
    kinds = ["events_applied"]
    if supersedes:
        kinds.append("events_corrections")
    if event_type == "voided":
        kinds.append("events_voids")
    return tuple(kinds)


def event_increments(*, duplicate: bool, event_type: str, supersedes: str | None, applied_at_us: int,
                     period_end: int) -> dict[str, int]:
    """What one event adds to the event counts of one period's row."""
    out = dict.fromkeys(kind_increments(duplicate=duplicate, event_type=event_type, supersedes=supersedes), 1)
    if not duplicate and applied_at_us >= period_end:
        out["events_after_close"] = 1
    return out


def period_finality(period: str, now_us: int, latest_version: int | None, restated: bool) -> str:
    """open (not ended), closed (ended, never published), published, or restated since."""
    if latest_version is not None:
        return RESTATED if restated else PUBLISHED
    return OPEN if now_us < period_end_us(period) else CLOSED
