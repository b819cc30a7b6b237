"""The published JSON Schema is the truth: the fast validator accepts exactly what it does.

jsonschema validates with a date-time format checker written here from RFC 3339's grammar
and the calendar, independent of the code under test (rfc3339-validator is not installed).
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from streams.domain.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    REQUIRED_FIELDS_BY_TYPE,
    DossierEvent,
    event_from_mapping,
    parse_event,
    rfc3339_to_us,
)
from streams.domain.instants import us_to_rfc3339
from streams.errors import InvalidEvent
from tests.support.paths import REPO_ROOT
from tests.support.strategies import identifiers, rfc3339_timestamps, timestamps, valid_event_dicts

SCHEMA_PATH = REPO_ROOT / "schemas" / "dossier-event.v1.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

RFC3339_GRAMMAR = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)
date_time_checker = FormatChecker(formats=())


@date_time_checker.checks("date-time")
def is_rfc3339_date_time(value: object) -> bool:
    """RFC 3339 section 5.6 `date-time`, with the calendar's month lengths (leap seconds
    allowed, as RFC 3339 does; the schema's pattern forbids them)."""
    if not isinstance(value, str):
        return True  # formats constrain only strings
    match = RFC3339_GRAMMAR.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    offset_hour, offset_minute = (int(group or 0) for group in match.groups()[6:])
    return (
        1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23 and minute <= 59 and second <= 60
        and offset_hour <= 23 and offset_minute <= 59
    )


VALIDATOR = Draft202012Validator(SCHEMA, format_checker=date_time_checker)

STRING_FIELDS = {"event_id": 128, "dossier_id": 128, "procedure_code": 64, "supersedes": 128}
ENUM_FIELDS = {
    "type": EVENT_TYPES,
    "channel": ("online", "in_person", "postal"),
    "method": ("online", "in_person"),
    "delivery": ("online", "public_postal", "in_person"),
    "portal": ("national", "agency"),
}
BOOLEAN_FIELDS = ("electronic", "in_person", "digitized")
TIMESTAMP_FIELDS = ("occurred_at", "due_at")
KNOWN_FIELDS = ("schema", "agency_code", "amount_vnd", *STRING_FIELDS, *ENUM_FIELDS, *BOOLEAN_FIELDS, *TIMESTAMP_FIELDS)


def code_accepts(obj: object) -> bool:
    try:
        event_from_mapping(obj)  # type: ignore[arg-type]
    except InvalidEvent as exc:
        assert exc.reason == "schema"
        return False
    return True


def assert_agree(obj: object) -> None:
    schema_errors = [error.message for error in VALIDATOR.iter_errors(obj)][:3]
    assert code_accepts(obj) == (not schema_errors), (obj, schema_errors)


def heartbeat(**fields: object) -> dict:
    return {"schema": "emc.dossier-event.v1", "event_id": "e1", "agency_code": "T01", "type": "heartbeat",
            "occurred_at": "2025-01-01T00:00:00Z", **fields}


# --- (d) the schema itself -------------------------------------------------------------


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] and SCHEMA["title"] and SCHEMA["description"]
    assert all("description" in spec for spec in SCHEMA["properties"].values())


def test_the_validator_asserts_the_date_time_format() -> None:
    # Without format assertion the agreement tests below would pass vacuously on dates.
    assert not VALIDATOR.is_valid(heartbeat(occurred_at="2025-02-30T00:00:00Z"))
    assert VALIDATOR.is_valid(heartbeat(occurred_at="2024-02-29T00:00:00Z"))


# --- (a) a generated corpus: jsonschema and the code agree ------------------------------


def _two_digits(limit: int) -> st.SearchStrategy[str]:
    return st.integers(0, limit).map("{:02d}".format)


_TIMESTAMP_PARTS = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})(?P<separator>[Tt])"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?(?P<offset>.*)"
)
# One change each to a valid timestamp; some keep it valid (day 29 of a long month,
# offset -00:00), most break exactly one rule.
_TIMESTAMP_CHANGES: list[dict[str, str]] = [
    *({"day": day} for day in ("29", "30", "31", "32", "00", "1")),
    *({"month": month} for month in ("00", "02", "04", "12", "13", "1")),
    *({"year": "2024" if leap else "2023", "month": "02", "day": "29"} for leap in (True, False)),
    *({"year": year, "month": "02", "day": "29"} for year in ("1900", "2000", "2100", "2400")),
    {"year": "0000"}, {"year": "0001"}, {"year": "9999", "month": "12", "day": "31"},
    {"hour": "24"}, {"hour": "23"}, {"minute": "60"}, {"second": "60"}, {"second": "59"},
    *({"fraction": fraction} for fraction in ("", ".", ".123456789", ".1234567890", ",5", ".000000000")),
    *({"offset": offset} for offset in (
        "", "Z", "z", "-00:00", "+23:59", "-23:59", "+24:00", "+07:60", "+0700", "+7:00", "+07", "UTC", "Z\n",
        "+07:00\n", "Z ", " Z",
    )),
    *({"separator": separator} for separator in (" ", "t", "_", "", "TT")),
]


def _change_timestamp(text: str, change: dict[str, str]) -> str:
    parts = _TIMESTAMP_PARTS.fullmatch(text).groupdict(default="")  # type: ignore[union-attr]
    parts.update(change)
    return "{year}-{month}-{day}{separator}{hour}:{minute}:{second}{fraction}{offset}".format(**parts)


# Strings shaped like RFC 3339 timestamps: two thirds a valid one with one part changed
# (hence listed twice), one third assembled freely from parts in and out of range.
_changed_timestamps = st.builds(_change_timestamp, timestamps, st.sampled_from(_TIMESTAMP_CHANGES))
timestamp_like_texts = st.one_of(
    _changed_timestamps,
    _changed_timestamps,
    st.tuples(
        st.sampled_from(["2025", "2024", "2000", "1900", "0001", "0000", "9999", "1969", "25", "20250"]),
        st.just("-"),
        st.one_of(_two_digits(13), st.sampled_from(["1", "001"])),
        st.just("-"),
        st.one_of(st.sampled_from(["28", "29", "30", "31"]), _two_digits(32)),
        st.sampled_from(["T", "T", "t", " ", "_", ""]),
        _two_digits(24), st.just(":"), _two_digits(60), st.just(":"), _two_digits(61),
        st.one_of(st.just(""), st.text("0123456789", max_size=11).map(lambda digits: "." + digits)),
        st.sampled_from(["Z", "z", "+07:00", "-05:30", "-00:00", "+23:59", "+24:00", "+07:60", "", "+0700"]),
        st.sampled_from(["", "", "", "\n", " ", "x"]),
    ).map("".join),
)


def _strings_of_length(length: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), min_size=length, max_size=length)


_AGENCY_CODE_CHARS = "ABZ0129_.-"


def _agency_code_of_length(length: int) -> st.SearchStrategy[str]:
    return st.builds(str.__add__, st.sampled_from("AZ09"), st.text(_AGENCY_CODE_CHARS, min_size=length - 1,
                                                                     max_size=length - 1))


def _insert(text: str, position: int, character: str) -> str:
    position %= len(text) + 1
    return text[:position] + character + text[position:]


def _near_miss_agency_codes() -> st.SearchStrategy[str]:
    """Agency codes at the pattern's edges, each breaking at most one of its rules: length
    1, 2, 32 or 33; a bad first character; one bad character later; a final newline."""
    short_body = st.integers(1, 8).flatmap(_agency_code_of_length)
    return st.one_of(
        st.sampled_from([1, 2, 31, 32, 33, 34]).flatmap(_agency_code_of_length),
        st.builds(str.__add__, st.sampled_from(["a", "z", "_", ".", "-", "É", " ", "\n"]), st.text(
            _AGENCY_CODE_CHARS, min_size=1, max_size=8)),
        st.builds(_insert, short_body, st.integers(1, 8), st.sampled_from(["a", "z", " ", "É", "/", "\n", "\t"])),
        st.builds(str.__add__, short_body, st.sampled_from(["\n", " ", ""])),
    )


@functools.cache
def wrong_values_for(field: str) -> st.SearchStrategy[object]:
    """Values that break, or nearly break, the rule of `field`."""
    generic = st.one_of(
        st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1.0, 0.0, -0.0, 2.5, -1, 10**20, 1e20]),
        st.just(""), st.text(max_size=4), st.lists(st.integers(), max_size=2), st.just({}), st.just({"a": 1}),
    )
    # Near misses of the field's own rule come three times as often as generic ones.
    near_misses: list[st.SearchStrategy[object]] = []
    if field in STRING_FIELDS:
        limit = STRING_FIELDS[field]
        near_misses.append(st.sampled_from([0, 1, limit - 1, limit, limit + 1, limit + 40]).flatmap(_strings_of_length))
    if field in ENUM_FIELDS:
        allowed = list(ENUM_FIELDS[field])
        near_misses.append(st.sampled_from(
            allowed + [value.upper() for value in allowed] + [value + " " for value in allowed]
            + ["public postal", "in-person", "offline", "Received", "heartbeat", "online\n", "postal"]
        ))
    if field in BOOLEAN_FIELDS:
        near_misses.append(st.sampled_from([0, 1, 0.0, 1.0, "true", "false", True, False, None]))
    if field in TIMESTAMP_FIELDS:
        near_misses.append(st.one_of(timestamp_like_texts, timestamps, st.integers(0, 2**40)))
    if field == "amount_vnd":
        near_misses.append(st.one_of(
            st.integers(-(2**64), 2**64), st.sampled_from([True, False, "100", 1.5, -0.5, -1, 0, 1e300, 2.0**63]),
            st.floats(allow_nan=False, allow_infinity=False),
        ))
    if field == "agency_code":
        near_misses.append(_near_miss_agency_codes())
    if field == "schema":
        near_misses.append(st.sampled_from(["emc.dossier-event.v1", "emc.dossier-event.v2", "emc.dossier-event.v1 "]))
    if not near_misses:
        return generic
    # Not one_of(generic, *near_misses): one_of flattens nested one_ofs and picks among all
    # their branches, so the ten generic ones would win most draws.
    near_miss = st.one_of(near_misses)
    return st.sampled_from([generic, near_miss, near_miss, near_miss]).flatmap(lambda strategy: strategy)


_mutation_counts = st.sampled_from([0, 1, 1, 1, 1, 2, 3])
_mutations = st.sampled_from(["delete", "replace", "replace", "replace", "add_unknown"])
_known_fields = st.sampled_from(KNOWN_FIELDS)
_unknown_fields = st.sampled_from(["extra", "Channel", "dossierId", "occurred_at "])
_valid_events_with_extras = valid_event_dicts(extras=True)
_one_in_forty = st.integers(0, 39).map(lambda n: n == 17)  # 0 would be drawn far more than 1 in 40


@st.composite
def event_like_objects(draw: st.DrawFn) -> object:
    """A valid event, then 0 to 3 mutations: a field deleted, given a wrong or near-miss
    value, or an unknown field added; sometimes not an object at all."""
    event = draw(_valid_events_with_extras)
    for _ in range(draw(_mutation_counts)):
        # Half the time a field the event has, so that most mutants break exactly one rule.
        field = draw(st.sampled_from(sorted(event)) if draw(st.booleans()) else _known_fields)
        mutation = draw(_mutations)
        if mutation == "delete":
            event.pop(field, None)
        elif mutation == "replace":
            event[field] = draw(wrong_values_for(field))
        else:
            event[draw(_unknown_fields)] = draw(wrong_values_for("unknown"))
    if draw(_one_in_forty):
        return draw(st.sampled_from([[event], "event", 3, 1.5, None, True, []]))
    return event


@settings(max_examples=1000, deadline=None)
@given(event_like_objects())
def test_code_and_schema_agree_on_a_generated_corpus(obj: object) -> None:
    assert_agree(obj)


@pytest.mark.parametrize("field", (*KNOWN_FIELDS, "unknown"))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_code_and_schema_agree_when_one_field_is_wrong(field: str, data: st.DataObject) -> None:
    # One broken rule per event: the sharpest test of each field's own checks.
    event = data.draw(_valid_events_with_extras)
    event[field] = data.draw(wrong_values_for(field), label=field)
    assert_agree(event)


@settings(max_examples=600, deadline=None)
@given(timestamp_like_texts)
@example("2024-02-29T00:00:00Z")
@example("1900-02-29T00:00:00Z")
@example("2025-04-31T00:00:00+07:00")
@example("2025-01-01T00:00:00Z\n")
@example("2025-12-31T23:59:60Z")
@example("0000-01-01T00:00:00Z")
def test_code_and_schema_agree_on_timestamp_like_texts(text: str) -> None:
    assert_agree(heartbeat(occurred_at=text))
    assert_agree(heartbeat(occurred_at="2025-01-01T00:00:00Z", due_at=text))


@settings(max_examples=300, deadline=None)
@given(valid_event_dicts(extras=True))
def test_valid_events_are_accepted_by_both(obj: dict) -> None:
    assert VALIDATOR.is_valid(obj), list(VALIDATOR.iter_errors(obj))[:2]
    assert code_accepts(obj)


def _minimal_event(kind: str) -> dict:
    fields = {"dossier_id": "d1", "procedure_code": "1.001", "channel": "online", "method": "online",
              "delivery": "online"}
    return {**heartbeat(type=kind), **{name: fields[name] for name in REQUIRED_FIELDS_BY_TYPE[kind]}}


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_each_required_field_is_required_by_both(kind: str) -> None:
    event = _minimal_event(kind)
    assert code_accepts(event) and VALIDATOR.is_valid(event)
    for field in event:
        broken = {name: value for name, value in event.items() if name != field}
        assert not code_accepts(broken), field
        assert not VALIDATOR.is_valid(broken), field


SINGLE_FIELD_VALUES = (
    None, True, False, 0, 1, -1, 1.0, -0.0, 2.5, 10**20, 1e20, "", "x", "x" * 64, "x" * 65, "x" * 128, "x" * 129,
    [], {}, "online", "in_person", "postal", "public_postal", "national", "agency", "NATIONAL", "ONLINE", "T01", "t01", "T01\n", "T0 1", "é01", "T",
    "TT", "_T01", "A" * 32, "A" * 33,
    "2025-02-30T00:00:00Z", "2025-01-01T00:00:00", "2025-01-01T24:00:00Z", "2025-01-01T00:00:00+24:00",
    "2025-01-01T00:00:00.1234567891Z", "2025-01-01T00:00:00Z\n", "2024-02-29T23:59:59.999999999-23:59",
    "emc.dossier-event.v1", "heartbeat", "received",
)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_code_and_schema_agree_on_every_single_field_mutation(kind: str) -> None:
    event = {**_minimal_event(kind), "amount_vnd": 5, "due_at": "2025-01-02T00:00:00+07:00", "supersedes": "e0"}
    for field in (*KNOWN_FIELDS, "unknown"):
        for value in SINGLE_FIELD_VALUES:
            assert_agree({**event, field: value})


@given(identifiers)
def test_any_unicode_identifier_up_to_128_code_points_is_an_event_id(text: str) -> None:
    event = heartbeat(event_id=text)
    assert code_accepts(event) == VALIDATOR.is_valid(event) == (1 <= len(text) <= 128)


# --- the model ---------------------------------------------------------------------------


def test_a_full_received_event_becomes_the_model() -> None:
    event = event_from_mapping({
        "schema": "emc.dossier-event.v1", "event_id": "e9", "agency_code": "T01", "type": "received",
        "occurred_at": "2025-05-01T00:30:00+07:00", "dossier_id": "D-1", "procedure_code": "1.001",
        "channel": "online", "digitized": True, "due_at": "2025-05-10T17:00:00+07:00", "supersedes": "e8",
        "portal": "national", "note": "unknown fields are ignored",
    })
    assert event == DossierEvent(
        event_id="e9", agency_code="T01", type="received", occurred_at_us=rfc3339_to_us("2025-04-30T17:30:00Z"),
        dossier_id="D-1", procedure_code="1.001", channel="online", digitized=True,
        due_at_us=rfc3339_to_us("2025-05-10T10:00:00Z"), supersedes="e8", portal="national",
    )


def test_fields_of_other_types_are_checked_but_dropped() -> None:
    received = {**_minimal_event("received"), "method": "in_person", "delivery": "in_person", "electronic": True,
                "in_person": True, "amount_vnd": 5}
    event = event_from_mapping(received)
    assert (event.method, event.delivery, event.electronic, event.in_person, event.amount_vnd) == (
        None, None, False, False, None)
    assert event_from_mapping({**_minimal_event("fee_paid"), "portal": "national"}).portal is None
    assert event_from_mapping(heartbeat(dossier_id="d1", supersedes="e0", channel="online")) == DossierEvent(
        event_id="e1", agency_code="T01", type="heartbeat", occurred_at_us=rfc3339_to_us("2025-01-01T00:00:00Z"))
    with pytest.raises(InvalidEvent, match="method: 'by_card' is not one of"):
        event_from_mapping({**received, "method": "by_card"})


def test_integral_floats_are_integers_and_booleans_are_not() -> None:
    fee = {**_minimal_event("fee_paid"), "amount_vnd": 1.0}
    assert VALIDATOR.is_valid(fee)
    event = event_from_mapping(fee)
    assert event.amount_vnd == 1 and type(event.amount_vnd) is int
    for value in (True, 1.5, -1, "1"):
        assert not VALIDATOR.is_valid({**fee, "amount_vnd": value})
        assert not code_accepts({**fee, "amount_vnd": value})
    for value in (0, 1):
        assert not code_accepts(heartbeat(electronic=value))


@pytest.mark.parametrize(
    ("obj", "detail"),
    [
        ({**_minimal_event("received"), "channel": None}, "channel: None is not one of online, in_person, postal"),
        ({key: value for key, value in _minimal_event("received").items() if key != "channel"},
         "channel: required for type received"),
        (heartbeat(event_id=""), "event_id: length 0 < 1"),
        (heartbeat(event_id="x" * 129), "event_id: length 129 > 128"),
        (heartbeat(electronic=1), "electronic: number is not a boolean"),
        (heartbeat(occurred_at="2025-02-30T00:00:00Z"), "occurred_at: '2025-02-30T00:00:00Z' is an impossible date"),
        (heartbeat(occurred_at="2025-01-01T00:00:00"), "occurred_at: '2025-01-01T00:00:00' is not an RFC 3339"),
        ({"schema": "emc.dossier-event.v1"}, "type: required"),
        ([], "the event is a JSON array, not an object"),
    ],
)
def test_schema_errors_name_the_field_and_the_rule(obj: object, detail: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        event_from_mapping(obj)  # type: ignore[arg-type]
    assert caught.value.reason == "schema"
    assert caught.value.detail.startswith(detail), caught.value.detail


# --- (b) parse_event's reason codes ------------------------------------------------------

GOOD = orjson.dumps(heartbeat())


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        (GOOD[:-1] + b', "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}', b"T01", "oversize"),
        (b"\xff" * (MAX_EVENT_BYTES + 1), b"T01", "oversize"),
        (GOOD.replace(b'"e1"', b'"e\xff"'), b"T01", "not_utf8"),
        (GOOD.replace(b'"e1"', b'"\xed\xa0\x80"'), b"T01", "not_utf8"),  # an encoded surrogate
        (b"\xc0\xaf", None, "not_utf8"),  # an overlong encoding
        (b"{nope", b"T01", "not_json"),
        (b"", b"T01", "not_json"),
        (b'{"event_id": "e1",}', b"T01", "not_json"),
        (b"[1, 2]", b"T01", "not_json"),
        (b'"an event"', b"T01", "not_json"),
        (b"null", None, "not_json"),
        (b"\xef\xbb\xbf" + GOOD, b"T01", "not_json"),  # a byte order mark is not JSON
        (GOOD.replace(b"heartbeat", b"beat"), b"T01", "schema"),
        (GOOD.replace(b'"T01"', b'"t01"'), b"t01", "schema"),
        (GOOD, b"T02", "key_mismatch"),
        (GOOD, b"", "key_mismatch"),
        (GOOD, b"T01 ", "key_mismatch"),
        (GOOD, b"\xff", "key_mismatch"),
    ],
)
def test_parse_event_reasons(raw: bytes, key: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, key)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_an_event_of_exactly_the_maximum_size_is_accepted() -> None:
    padding = MAX_EVENT_BYTES - len(GOOD) - len(b', "pad": ""')
    raw = GOOD[:-1] + b', "pad": "' + b"x" * padding + b'"}'
    assert len(raw) == MAX_EVENT_BYTES
    assert parse_event(raw, b"T01").event_id == "e1"


def test_parse_event_accepts_a_valid_event_with_or_without_a_key() -> None:
    assert parse_event(GOOD).agency_code == "T01"
    assert parse_event(GOOD, b"T01").type == "heartbeat"


@settings(max_examples=200, deadline=None)
@given(valid_event_dicts(extras=True))
def test_parse_event_agrees_with_event_from_mapping(obj: dict) -> None:
    assert parse_event(orjson.dumps(obj), obj["agency_code"].encode()) == event_from_mapping(obj)


# --- (c) timestamps ------------------------------------------------------------------------


def test_the_same_instant_in_any_offset_is_the_same_microsecond() -> None:
    assert rfc3339_to_us("2025-04-30T17:30:00Z") == rfc3339_to_us("2025-05-01T00:30:00+07:00")
    assert rfc3339_to_us("2025-04-30t17:30:00z") == rfc3339_to_us("2025-04-30T12:30:00-05:00")
    assert rfc3339_to_us("2025-04-30T17:30:00Z") == 1_746_034_200_000_000
    assert rfc3339_to_us("1970-01-01T00:00:00.000001Z") == 1
    assert rfc3339_to_us("1969-12-31T23:59:59.5Z") == -500_000


def test_sub_microsecond_digits_are_truncated_not_rounded() -> None:
    assert rfc3339_to_us("1970-01-01T00:00:00.9999999Z") == 999_999
    assert rfc3339_to_us("1970-01-01T00:00:00.999999999Z") == 999_999


@pytest.mark.parametrize(
    "text",
    ["2025-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2025-01-01T00:00:00", "2025-01-01 00:00:00Z",
     "2025-01-01T00:00:00Z\n", "２０２５-01-01T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T23:59:60Z",
     "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00.1234567891Z", ""],
)
def test_bad_timestamps_are_schema_errors(text: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        rfc3339_to_us(text)
    assert caught.value.reason == "schema"


def _reference_us(text: str) -> int:
    """The instant by datetime's own (aware) arithmetic, fraction truncated to µs."""
    head, fraction, offset = text[:19], "", text[19:]
    if offset.startswith("."):
        digits = re.match(r"\.([0-9]+)", offset).group(1)  # type: ignore[union-attr]
        fraction, offset = "." + digits[:6].ljust(6, "0"), offset[1 + len(digits):]
    offset = "+00:00" if offset in ("Z", "z") else offset
    moment = datetime.fromisoformat(f"{head[:10]}T{head[11:]}{fraction}{offset}")
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


@settings(max_examples=300)
@given(rfc3339_timestamps(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_timestamps_convert_exactly(text: str) -> None:
    assert rfc3339_to_us(text) == _reference_us(text)


MIN_US = rfc3339_to_us("0001-01-01T00:00:00Z")
MAX_US = rfc3339_to_us("9999-12-31T23:59:59.999999Z")


@given(st.integers(MIN_US, MAX_US))
@example(0)
@example(1)
@example(-1)
def test_us_to_rfc3339_round_trips(us: int) -> None:
    text = us_to_rfc3339(us)
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z", text)
    assert (us % 1_000_000 == 0) == ("." not in text)
    assert rfc3339_to_us(text) == us


def test_us_to_rfc3339_formats_utc() -> None:
    assert us_to_rfc3339(1_746_034_200_000_000) == "2025-04-30T17:30:00Z"
    assert us_to_rfc3339(1_746_034_200_000_001) == "2025-04-30T17:30:00.000001Z"
