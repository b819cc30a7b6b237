"""The published JSON Schema is the truth: the fast validator accepts exactly what it does."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from streams.domain.events import MAX_EVENT_BYTES, event_from_mapping, parse_event, rfc3339_to_us, us_to_rfc3339
from streams.errors import InvalidEvent
from tests.strategies import REQUIRED_BY_TYPE, identifiers, valid_event_dicts

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "dossier-event.v1.json").read_text())

format_checker = FormatChecker(formats=())


@format_checker.checks("date-time", raises=ValueError)
def _is_rfc3339(text: object) -> bool:
    """Independent of the code under test: the calendar check of RFC 3339 via fromisoformat."""
    if not isinstance(text, str):
        return True
    head, tail = text[:19], text[19:]
    if tail.startswith("."):
        tail = tail.lstrip(".0123456789")
    datetime.fromisoformat(head.upper() + ("+00:00" if tail in ("Z", "z") else tail))
    return True


VALIDATOR = Draft202012Validator(SCHEMA, format_checker=format_checker)


def _code_accepts(obj: object) -> bool:
    try:
        event_from_mapping(obj)  # type: ignore[arg-type]
    except InvalidEvent:
        return False
    return True


wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3), st.text(min_size=129, max_size=140), st.just(""), st.lists(st.integers(), max_size=2),
    st.just({}), st.just(1.0), st.just(2.5), st.just(-1), st.just(0), st.just(10**12), st.just("2025-02-30T00:00:00Z"), st.just("2025-01-01T00:00:00"),
    st.just("2025-01-01 00:00:00Z"), st.just("2025-01-01T24:00:00Z"), st.just("2025-01-01T00:00:00+25:00"),
    st.sampled_from(["online", "in_person", "postal", "public_postal", "ONLINE", "heartbeat", "received"]),
    st.sampled_from(["T01", "t01", "T", "T0 1", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "é01"]),
)
FIELDS = (
    "schema", "event_id", "agency_code", "dossier_id", "procedure_code", "type", "occurred_at", "channel",
    "method", "amount_vnd", "delivery", "electronic", "in_person", "digitized", "due_at", "supersedes", "extra",
)


@st.composite
def corpus(draw: st.DrawFn) -> object:
    event = draw(valid_event_dicts())
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        # Half the time a field the event has, so that most mutants differ in one rule.
        field = draw(st.sampled_from(sorted(event)) if draw(st.booleans()) else st.sampled_from(FIELDS))
        action = draw(st.sampled_from(["delete", "replace", "replace"]))
        if action == "delete":
            event.pop(field, None)
        else:
            event[field] = draw(wrong_values)
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[event], "event", 3, None]))
    return event


@settings(max_examples=3000, deadline=None)
@given(corpus())
def test_code_and_schema_agree_on_a_generated_corpus(obj: object) -> None:
    assert _code_accepts(obj) == VALIDATOR.is_valid(obj), list(VALIDATOR.iter_errors(obj))[:2]


@settings(max_examples=500, deadline=None)
@given(valid_event_dicts())
def test_valid_events_are_accepted_by_both(obj: dict) -> None:
    assert VALIDATOR.is_valid(obj)
    assert _code_accepts(obj)


@pytest.mark.parametrize("kind", sorted(REQUIRED_BY_TYPE))
def test_each_required_field_is_required(kind: str) -> None:
    base = {"schema": "emc.dossier-event.v1", "event_id": "e", "agency_code": "T01", "type": kind,
            "occurred_at": "2025-01-01T00:00:00Z", "dossier_id": "d", "procedure_code": "p", "channel": "online",
            "method": "online", "delivery": "online"}
    assert _code_accepts(base) and VALIDATOR.is_valid(base)
    for field in ("schema", "event_id", "agency_code", "type", "occurred_at", *REQUIRED_BY_TYPE[kind]):
        broken = {k: v for k, v in base.items() if k != field}
        assert not _code_accepts(broken), field
        assert not VALIDATOR.is_valid(broken), field


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


GOOD = orjson.dumps({"schema": "emc.dossier-event.v1", "event_id": "e1", "agency_code": "T01", "type": "heartbeat",
                     "occurred_at": "2025-01-01T00:00:00Z"})


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        (b"{nope", b"T01", "not_json"),
        (b"[1, 2]", b"T01", "not_json"),
        (b'{"a": "\xff"}', b"T01", "not_utf8"),
        (GOOD[:-1] + b', "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}', b"T01", "oversize"),
        (GOOD, b"T02", "key_mismatch"),
        (GOOD, b"\xff", "key_mismatch"),
        (GOOD.replace(b"heartbeat", b"beat"), b"T01", "schema"),
    ],
)
def test_parse_event_reasons(raw: bytes, key: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, key)
    assert caught.value.reason == reason


def test_parse_event_accepts_a_keyless_valid_event() -> None:
    assert parse_event(GOOD).agency_code == "T01"
    assert parse_event(GOOD, b"T01").type == "heartbeat"


def test_timestamps_are_exact_instants() -> None:
    assert rfc3339_to_us("2025-04-30T17:30:00Z") == rfc3339_to_us("2025-05-01T00:30:00+07:00")
    assert rfc3339_to_us("1970-01-01T00:00:00.000001Z") == 1
    assert rfc3339_to_us("1970-01-01T00:00:00.9999999Z") == 999_999  # truncated, never rounded up
    for text in ("2025-02-30T00:00:00Z", "2025-01-01T00:00:00", "2025-01-01T00:00:00Z\n", "２０２５-01-01T00:00:00Z"):
        with pytest.raises(InvalidEvent):
            rfc3339_to_us(text)


@given(st.integers(0, 4_102_444_800_000_000))
def test_rfc3339_round_trip(us: int) -> None:
    assert rfc3339_to_us(us_to_rfc3339(us)) == us


@given(identifiers)
def test_any_unicode_identifier_is_a_valid_event_id(text: str) -> None:
    event = {"schema": "emc.dossier-event.v1", "event_id": text, "agency_code": "T01", "type": "heartbeat",
             "occurred_at": "2025-01-01T00:00:00Z"}
    assert _code_accepts(event) == VALIDATOR.is_valid(event) == (len(text) <= 128)


BAD_VALUES = (
    None, True, False, 0, -1, 1, 1.0, 2.5, -0.5, 10**12, "", "x", "x" * 129, "x" * 65, [], {}, "online", "in_person",
    "postal", "public_postal", "ONLINE", "T01", "t01", "T0 1", "é01", "2025-02-30T00:00:00Z", "2025-01-01T00:00:00",
    "2025-01-01T24:00:00Z", "2025-01-01T00:00:00+25:00", "2025-01-01T00:00:00.1234567891Z", "2025-01-01T00:00:00Z\n",
    "emc.dossier-event.v1", "heartbeat", "received",
)


@pytest.mark.parametrize("kind", sorted({*REQUIRED_BY_TYPE, "result_issued", "supplement_received", "voided"}))
def test_code_and_schema_agree_on_every_single_field_mutation(kind: str) -> None:
    base = {"schema": "emc.dossier-event.v1", "event_id": "e", "agency_code": "T01", "type": kind,
            "occurred_at": "2025-01-01T00:00:00Z", "dossier_id": "d", "procedure_code": "p", "channel": "online",
            "method": "online", "delivery": "online", "amount_vnd": 5, "due_at": "2025-01-02T00:00:00+07:00"}
    disagreements = []
    for field in FIELDS:
        for value in BAD_VALUES:
            mutant = dict(base, **{field: value})
            if _code_accepts(mutant) != VALIDATOR.is_valid(mutant):
                disagreements.append((field, value, VALIDATOR.is_valid(mutant)))
    assert not disagreements, disagreements[:5]
