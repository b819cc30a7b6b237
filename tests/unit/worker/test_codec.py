"""The positional wire form of events: what ingest batches and dossier rows hold."""

from __future__ import annotations

import orjson

from streams.domain.events import DossierEvent
from streams.worker.codec import EventView, decode_batch, encode_batch, event_from_wire, event_to_wire, wire_of
from tests.support.simulated import faulty_stream


def test_events_come_back_equal_through_a_batch_message() -> None:
    events = [item.event for item in faulty_stream(5, dossiers=30)]
    decoded = decode_batch(encode_batch(3, list(enumerate(events))))
    # Views of the events: every field equal to the event's, by name and in wire order.
    assert all(type(s.event) is EventView for s in decoded)
    assert [(s.source_partition, s.offset, event_from_wire(s.event)) for s in decoded] == [
        (3, i, e) for i, e in enumerate(events)]
    assert [wire_of(s.event) for s in decoded] == [event_to_wire(e) for e in events]


def test_a_wire_stored_before_the_last_fields_were_appended_takes_their_defaults() -> None:
    event = DossierEvent("e1", "T01", "received", 1_735_700_000_000_000, "D1", "1.1", "online", portal="national")
    wire = orjson.loads(orjson.dumps(event_to_wire(event)))
    assert event_from_wire(wire) == event
    before_portal = wire[:-1]  # the form of rows written before `portal` was appended
    assert event_from_wire(before_portal) == DossierEvent(*before_portal)
    assert event_from_wire(before_portal).portal is None
