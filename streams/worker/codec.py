"""Compact wire/storage form of validated events and of ingest batches.

The ingest stage validates each raw event once; the state stage receives batches of
already-validated events in this positional form, so it neither re-validates nor pays for
dict keys. The same form is what a dossier row stores for each applied event.
"""

from __future__ import annotations

from collections import namedtuple
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

# Where the event id is in a wire (what a dossier row's reader compares without decoding).
WIRE_EVENT_ID = _FIELDS.index("event_id")

_wire_of = attrgetter(*_FIELDS)


def event_to_wire(event: DossierEvent) -> tuple:
    return _wire_of(event)


def event_from_wire(wire: list) -> DossierEvent:
    if len(wire) == len(_FIELDS):
        return build_dossier_event(*wire)
    # Stored by a release before the last fields were appended: they take their defaults.
    return DossierEvent(*wire)


# A stored event as a named tuple with DossierEvent's field names: what a reader that only
# classifies stored events (the dossier endpoint's summaries for `emc reconcile`) builds
# instead of a DossierEvent, at a third of the cost. The domain's rules read events by
# attribute only, so they apply to it unchanged (a property test compares the two).
EventView = namedtuple("EventView", _FIELDS)


def event_view_from_wire(wire: list) -> DossierEvent:
    """A read-only view of a stored event for `streams.domain.dossier`'s rules."""
    if len(wire) == len(_FIELDS):
        return EventView._make(wire)  # type: ignore[return-value]
    return event_from_wire(wire)


def wire_of(event: DossierEvent) -> tuple:
    """The wire form of an event or of an `EventView` (which is its wire form already)."""
    return tuple(event) if type(event) is EventView else _wire_of(event)


class SourcedEvent(NamedTuple):
    """A validated event with the source-topic position it was read from.

    A named tuple rather than a frozen dataclass: as immutable, and built a few µs faster,
    once per event of every batch message. The event is a DossierEvent or, from
    `decode_batch`, an `EventView` of it: the state stage reads events by attribute only."""

    source_partition: int
    offset: int
    event: DossierEvent


def encode_batch(source_partition: int, events: list[tuple[int, DossierEvent]]) -> bytes:
    """One batch message: events of one source partition, in source-offset order."""
    return encode_batch_of_wires(source_partition, [(offset, _wire_of(e)) for offset, e in events])


def encode_batch_of_wires(source_partition: int, events: list[tuple[int, tuple]]) -> bytes:
    """encode_batch of events given in their wire form, which is DossierEvent's fields in order:
    what the ingest stage decodes input bytes into (`decode_event_fields`)."""
    return orjson.dumps({"sp": source_partition, "ev": events})


def decode_batch(payload: bytes) -> list[SourcedEvent]:
    """The events of a batch message as `EventView`s (a third of a DossierEvent's cost; the
    state stage stores them in their wire form again, which a view already is)."""
    data = orjson.loads(payload)
    source_partition = data["sp"]
    make_view, full = EventView._make, len(_FIELDS)
    return [SourcedEvent(source_partition, offset, make_view(wire) if len(wire) == full else event_from_wire(wire))
            for offset, wire in data["ev"]]
