"""The typed decode (msgspec) and the explaining path (orjson, then the validator of decoded
JSON) give the same outcome on any bytes: the same event fields, or the same reason and detail.

The explaining path is the one `test_event_schema.py` proves equal to the published schema; the
typed decode must never accept what it refuses, never refuse what it accepts (a refusal falls
back to it), and must really take the valid events of a stream itself.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.domain import events
from streams.domain.events import MAX_EVENT_BYTES, DossierEvent, decode_event_fields, parse_event
from streams.domain.registry import Registry
from streams.errors import InvalidEvent
from streams.simulation.simulator import SimulationConfig, simulate
from streams.worker import codec
from tests.support.strategies import valid_event_dicts
from tests.unit.domain.test_event_schema import event_like_objects


def outcome(decode, raw: bytes, key: bytes | None) -> tuple:
    try:
        return ("event", decode(raw, key))
    except InvalidEvent as exc:
        return ("dead letter", exc.reason, exc.detail)


def explained(raw: bytes, key: bytes | None) -> tuple:
    return dataclasses.astuple(events._parse_and_explain(raw, key))


def assert_same(raw: bytes, key: bytes | None) -> None:
    assert outcome(decode_event_fields, raw, key) == outcome(explained, raw, key), raw[:300]


def key_for(obj: object, draw_key: int) -> bytes | None:
    # Mostly the event's own agency code, sometimes none or another one.
    code = obj.get("agency_code") if isinstance(obj, dict) else None
    if draw_key == 0:
        return None
    if draw_key == 1 or not isinstance(code, str):
        return b"T01"
    return code.encode("utf-8", "surrogatepass")


@settings(max_examples=800, deadline=None)
@given(event_like_objects(), st.integers(0, 5))
def test_both_paths_agree_on_generated_events(obj: object, draw_key: int) -> None:
    try:
        raw = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # a lone surrogate drawn into a text: not encodable as UTF-8
        return
    assert_same(raw, key_for(obj, draw_key))


def _edit(raw: bytes, position: int, edit: str, byte: int) -> bytes:
    position %= len(raw)
    if edit == "delete":
        return raw[:position] + raw[position + 1:]
    if edit == "insert":
        return raw[:position] + bytes([byte]) + raw[position:]
    return raw[:position] + bytes([byte]) + raw[position + 1:]


_JSON_BYTES = st.sampled_from(list(b'{}[]",:0123456789.eE+-tfnul \\\t\n') + [0x00, 0x80, 0xc3, 0xe9, 0xff])


@settings(max_examples=600, deadline=None)
@given(valid_event_dicts(extras=True),
       st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["delete", "insert", "replace"]), _JSON_BYTES),
                min_size=1, max_size=3))
def test_both_paths_agree_on_damaged_bytes(obj: dict, edits: list) -> None:
    raw = orjson.dumps(obj)
    for position, edit, byte in edits:
        raw = _edit(raw, position, edit, byte)
    assert_same(raw, obj["agency_code"].encode())


RECEIVED = (b'"schema":"emc.dossier-event.v1","event_id":"e1","agency_code":"T01","type":"received",'
            b'"occurred_at":"2025-01-01T00:00:00+07:00","dossier_id":"d1","procedure_code":"1.001","channel":"online"')


@pytest.mark.parametrize("raw", [
    b"{" + RECEIVED + b"}",
    b"{" + RECEIVED + b',"type":"received"}',  # a key twice: JSON's last one wins, in both
    b"{" + RECEIVED + b',"type":"heartbeat"}',
    b"{" + RECEIVED + b',"channel":"postal"}',
    b"{" + RECEIVED + b',"channel":"pigeon"}',
    b'{"channel":"pigeon",' + RECEIVED + b"}",
    b"{" + RECEIVED + b',"typ\\u0065":"heartbeat"}',  # an escaped key is the same key
    b"{" + RECEIVED.replace(b'"channel"', b'"ch\\u0061nnel"') + b"}",
    b"{" + RECEIVED + b',"note":"\\ud800"}',  # a lone surrogate escape
    b"{" + RECEIVED + b',"note":"\\ud83d\\ude00"}',
    b"{" + RECEIVED + b',"note":18446744073709551616}',
    b"{" + RECEIVED + b',"note":1e400}',  # beyond a double: orjson refuses it, msgspec skips it unread
    b"{" + RECEIVED + b',"note":-1' + b"0" * 400 + b'}',
    b"{" + RECEIVED + b',"note":[1' + b"0" * 300 + b'e10]}',
    b"{" + RECEIVED + b',"note":1e-400}',
    b"{" + RECEIVED + b',"note":"\xff"}',  # invalid UTF-8 in a field msgspec skips
    b"{" + RECEIVED + b',"\xff":1}',
    b"{" + RECEIVED + b',"note":"Th\xc3\xa0nh ph\xe1\xbb\x91"}',
    b"{" + RECEIVED + b',"note":' + b"[" * 1100 + b"]" * 1100 + b"}",  # deeper than either parser goes
    b"{" + RECEIVED + b',"note":' + b"[" * 500 + b"]" * 500 + b"}",
    b"{" + RECEIVED + b',"method":null}',
    b"{" + RECEIVED + b',"method":"online","amount_vnd":1.0}',  # an integer to the schema; not to msgspec
    b"{" + RECEIVED + b',"amount_vnd":9223372036854775807}',
    b"{" + RECEIVED + b',"amount_vnd":9223372036854775808}',
    b"{" + RECEIVED + b',"amount_vnd":18446744073709551617}',
    b"{" + RECEIVED + b',"amount_vnd":-0}',
    b"{" + RECEIVED + b',"amount_vnd":true}',
    b"{" + RECEIVED + b',"digitized":1}',
    b"{" + RECEIVED + b',"due_at":"2025-02-30T00:00:00Z"}',
    b"{" + RECEIVED + b',"due_at":"2025-01-02T00:00:00.123456789-05:30","digitized":true}',
    b"{" + RECEIVED.replace(b"+07:00", b"z").replace(b"T00", b"t00") + b"}",
    b"{" + RECEIVED.replace(b"+07:00", b"") + b"}",
    b"{" + RECEIVED.replace(b'"T01"', b'"T01\\n"') + b"}",
    b"{" + RECEIVED.replace(b'"T01"', b'"t01"') + b"}",
    b"{" + RECEIVED.replace(b'"e1"', b'""') + b"}",
    b"{" + RECEIVED.replace(b'"e1"', b'"' + "é".encode() * 128 + b'"') + b"}",
    b"{" + RECEIVED.replace(b'"e1"', b'"' + "é".encode() * 129 + b'"') + b"}",
    b"{" + RECEIVED.replace(b'"emc.dossier-event.v1"', b'"emc.dossier-event.v2"') + b"}",
    b"\xef\xbb\xbf{" + RECEIVED + b"}",
    b" \n{" + RECEIVED + b"}\t\r\n ",
    b"{" + RECEIVED + b"}\x00",
    b"{" + RECEIVED + b",}",
    b"[{" + RECEIVED + b"}]",
    b"{" + RECEIVED.replace(b'"d1"', b'"d\xff"') + b"}",
    b"{" + RECEIVED.replace(b'"d1"', b'"\xed\xa0\x80"') + b"}",
    b"", b"null", b"{}", b"{not json", b"\x00" * 16,
])
@pytest.mark.parametrize("key", [b"T01", None, b"T02", b"\xff"])
def test_both_paths_agree_on_edge_cases(raw: bytes, key: bytes | None) -> None:
    assert_same(raw, key)


def test_oversize_is_refused_before_any_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(raw: bytes) -> None:
        raise AssertionError("an oversize value was decoded")

    monkeypatch.setattr(events, "_decode_typed", no_decode)
    monkeypatch.setattr(events.orjson, "loads", no_decode)
    with pytest.raises(InvalidEvent) as caught:
        decode_event_fields(b"{" + b" " * (2 * 1024 * 1024) + b"}", b"T01")
    assert (caught.value.reason, caught.value.detail) == ("oversize", f"{2 * 1024 * 1024 + 2} bytes > {MAX_EVENT_BYTES}")


def test_the_valid_events_of_a_stream_never_take_the_explaining_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # If the typed decode refused them all, every test above would still pass, and ingest
    # would be as slow as before.
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    codes = [agency.code for agency in Registry.load().valid_on(now.date())]
    config = SimulationConfig(agencies=codes, dossiers=300, seed=11, start=now - timedelta(days=30), end=now,
                              bad_share=0.0)
    messages = [(m.key, m.value) for m in simulate(config)]
    expected = [parse_event(value, key) for key, value in messages]

    def refuse(raw: bytes, key: bytes | None) -> DossierEvent:
        raise AssertionError(f"took the explaining path: {raw!r}")

    monkeypatch.setattr(events, "_parse_and_explain", refuse)
    assert [DossierEvent(*decode_event_fields(value, key)) for key, value in messages] == expected
    assert len({event.type for event in expected}) == len(events.EVENT_TYPES)


@settings(max_examples=200, deadline=None)
@given(valid_event_dicts(extras=True))
@example({"schema": "emc.dossier-event.v1", "event_id": "e", "agency_code": "T01", "type": "fee_paid",
          "occurred_at": "2025-01-01T00:00:00Z", "dossier_id": "d", "method": "online", "amount_vnd": 10**18})
def test_a_batch_of_decoded_fields_is_the_batch_of_the_events(obj: dict) -> None:
    raw = orjson.dumps(obj)
    assert codec.encode_batch_of_wires(2, [(7, decode_event_fields(raw))]) == codec.encode_batch(2, [(7, parse_event(raw))])
    view = codec.decode_batch(codec.encode_batch_of_wires(2, [(7, decode_event_fields(raw))]))[0].event
    assert codec.event_from_wire(codec.wire_of(view)) == parse_event(raw)  # a view of the event (codec.EventView)
