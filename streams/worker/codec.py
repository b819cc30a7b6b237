"""Compact wire/storage form of validated events and of ingest batches.

The ingest stage validates each raw event once; the state stage receives batches of
already-validated events in this positional form, so it neither re-validates nor pays for
dict keys. The same form is what a dossier row stores for each applied event.
"""

from __future__ import annotations

from operator import attrgetter
from typing import NamedTuple

import orjson

from streams.domain.events import DossierEvent, build_dossier_event

# Positional layout of an event (order matters; append only, never reorder).
_FIELDS = (
    "event_id",
    "agency_code",
    "type",
    "occurred_at_us",
    "dossier_id",
    "procedure_code",
    "channel",
    "method",
    "amount_vnd",
    "delivery",
    "electronic",
    "in_person",
    "digitized",
    "due_at_us",
    "supersedes",
    "portal",
)


_wire_of = attrgetter(*_FIELDS)


def event_to_wire(event: DossierEvent) -> tuple:
    return _wire_of(event)


def event_from_wire(wire: list) -> DossierEvent:
    if len(wire) == len(_FIELDS):
        return build_dossier_event(*wire)
    # Stored by a release before the last fields were appended: they take their defaults.
    return DossierEvent(*wire)


class SourcedEvent(NamedTuple):
    """A validated event with the source-topic position it was read from.

    A named tuple rather than a frozen dataclass: as immutable, and built a few µs faster,
    once per event of every batch message."""

    source_partition: int
    offset: int
    event: DossierEvent


def encode_batch(source_partition: int, events: list[tuple[int, DossierEvent]]) -> bytes:
    """One batch message: events of one source partition, in source-offset order."""
    return orjson.dumps({"sp": source_partition, "ev": [[offset, event_to_wire(e)] for offset, e in events]})


def decode_batch(payload: bytes) -> list[SourcedEvent]:
    data = orjson.loads(payload)
    source_partition = data["sp"]
    return [SourcedEvent(source_partition, offset, event_from_wire(wire)) for offset, wire in data["ev"]]
