"""The ingest stage's per-record check (no broker): a valid record becomes its event's fields,
the wire form of a batch message; a bad one a dead letter with its bytes, reason and the type it
claims; a value over the size limit is dead-lettered without being decoded or copied."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.domain.events import MAX_EVENT_BYTES, DossierEvent, parse_event
from streams.domain.registry import Registry
from streams.worker import ingest
from streams.worker.codec import decode_batch, encode_batch_of_wires, event_from_wire, wire_of
from streams.worker.ingest import DeadLetter, state_partition_for, validate_record, validate_record_fields
from tests.support.poison import TWO_MIB, poison

REGISTRY = Registry.load()
AGENCY = next(iter(REGISTRY)).code
EVENT = {"schema": "emc.dossier-event.v1", "event_id": "e1", "agency_code": AGENCY, "type": "fee_paid",
         "occurred_at": "2025-01-05T03:00:00+07:00", "dossier_id": "d1", "method": "online", "amount_vnd": 50_000}


def test_a_valid_record_becomes_the_fields_of_its_event() -> None:
    raw = orjson.dumps(EVENT)
    fields = validate_record_fields(REGISTRY, AGENCY.encode(), raw, "in", 0, 7)
    assert isinstance(fields, tuple) and DossierEvent(*fields) == parse_event(raw)
    assert validate_record(REGISTRY, AGENCY.encode(), raw, "in", 0, 7) == parse_event(raw)
    assert state_partition_for(fields[ingest._AGENCY_CODE], 4) == state_partition_for(AGENCY, 4)
    [sourced] = decode_batch(encode_batch_of_wires(0, [(7, fields)]))
    # The state stage reads a view of the event (codec.EventView); as an event, it is the same.
    assert (sourced.offset, event_from_wire(wire_of(sourced.event))) == (7, parse_event(raw))


@pytest.mark.parametrize(("change", "reason", "event_type"), [
    ({"agency_code": "NOPE1"}, "unknown_agency", "fee_paid"),
    ({"method": "cash"}, "schema", "fee_paid"),
    ({"type": "teleported"}, "schema", "teleported"),
    ({"amount_vnd": -1}, "schema", "fee_paid"),
])
def test_a_bad_record_becomes_a_dead_letter_with_its_reason(change: dict, reason: str, event_type: str) -> None:
    raw = orjson.dumps({**EVENT, **change})
    key = str(change.get("agency_code", AGENCY)).encode()
    letter = validate_record_fields(REGISTRY, key, raw, "in", 3, 9)
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.event_type, letter.value, letter.key, letter.partition, letter.offset) == (
        reason, event_type, raw, key, 3, 9)


def test_a_value_over_the_limit_is_neither_decoded_nor_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []  # recorded, not raised: the type guess swallows any error

    def loads(raw: bytes) -> object:
        decoded.append(len(raw))
        return orjson.loads(raw)

    monkeypatch.setattr(ingest.orjson, "loads", loads)
    value = b"{" + b" " * TWO_MIB + b"}"
    letter = validate_record_fields(REGISTRY, AGENCY.encode(), value, "in", 0, 1)
    assert isinstance(letter, DeadLetter) and decoded == []
    assert (letter.reason, letter.event_type) == ("oversize", "unknown")
    assert letter.value is value  # the one copy is the dead-letter record the producer builds
    assert letter.detail == f"{len(value)} bytes > {MAX_EVENT_BYTES}"


def test_every_kind_of_poison_is_a_dead_letter() -> None:
    rng = random.Random(3)
    for n in range(26):
        key, value, headers = poison(n, AGENCY, rng)
        letter = validate_record_fields(REGISTRY, key, value, "in", 0, n, None, headers)
        assert isinstance(letter, DeadLetter), (n, value[:80] if value else value)
        assert letter.value == (value if value is not None else b"")
