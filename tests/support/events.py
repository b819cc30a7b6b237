"""Events in wire form, as a source system sends them (contract section 1), before JSON encoding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streams.domain.instants import rfc3339_utc

SCHEMA_ID = "emc.dossier-event.v1"


def wire_event(agency: str, event_id: str, dossier: str | None, kind: str, at: str, **fields: object) -> dict:
    """An input event; `dossier` None for a heartbeat, `at` RFC 3339 text, `fields` the type's own."""
    event: dict[str, object] = {"schema": SCHEMA_ID, "event_id": event_id, "agency_code": agency, "type": kind,
                                "occurred_at": at}
    if dossier is not None:
        event["dossier_id"] = dossier
    event.update(fields)
    return event


def rfc3339(moment: datetime, offset: timedelta | None = None) -> str:
    """`moment` as RFC 3339 text to the second, at `offset` (default UTC, written `Z`)."""
    if offset is None:
        return rfc3339_utc(moment)
    return moment.astimezone(timezone(offset)).isoformat(timespec="seconds").replace("+00:00", "Z")
