"""Dossier events: the typed model, and a fast validator that accepts exactly what the
published JSON Schema (`schemas/dossier-event.v1.json`) accepts.

The validator is written by hand (no jsonschema at run time) because it runs on every
consumed event. `tests/unit/domain/test_event_schema.py` checks on a generated corpus that it
agrees with jsonschema, so the schema stays the single source of truth.

Two decisions of the schema that the code mirrors:

- Integral numbers such as ``1.0`` are integers in JSON Schema 2020-12 and a schema cannot
  forbid them, so ``amount_vnd: 1.0`` is accepted and becomes the int 1. JSON booleans are
  never integers (Python's ``True`` is an int, JSON Schema's is not).
- A field the contract defines for other event types (``method`` on a ``received``) is
  allowed but must still be well-formed; the model drops it, so that nothing downstream can
  count a field on a type that does not define it.

Bytes are decoded in one pass by msgspec into a Struct per event type (a tagged union on
`type`) whose field types carry most of the schema's rules (constants, enums, lengths, the
fields each type requires), at C speed; what Python still checks is the agency code's pattern
and the timestamps (`decode_event_fields`). Anything that typed decode refuses goes to the
validator of decoded JSON above (`_parse_and_explain`), which either names the broken rule,
exactly as before, or accepts it: the typed decode is the stricter (it refuses `1.0` as an
integer, and an event with unknown fields goes through orjson first). `tests/unit/domain/
test_event_decode.py` checks on generated and damaged bytes that both paths give the same
outcome.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Literal, Union

import msgspec
import orjson

from streams.domain.instants import us_of
from streams.domain.registry import CODE_PATTERN
from streams.errors import InvalidEvent, InvariantError

EVENT_TYPES: tuple[str, ...] = (
    "submitted",
    "received",
    "fee_paid",
    "supplement_requested",
    "supplement_received",
    "result_issued",
    "result_returned",
    "rejected",
    "withdrawn",
    "voided",
    "heartbeat",
)
MAX_EVENT_BYTES = 64 * 1024
SCHEMA_ID = "emc.dossier-event.v1"

CHANNELS: tuple[str, ...] = ("online", "in_person", "postal")
PAYMENT_METHODS: tuple[str, ...] = ("online", "in_person")
DELIVERIES: tuple[str, ...] = ("online", "public_postal", "in_person")
# Where an online dossier was submitted: the National Public Service Portal (Cổng dịch vụ
# công quốc gia) or the agency's own portal.
PORTALS: tuple[str, ...] = ("national", "agency")

# Maximum lengths in Unicode code points (what JSON Schema and Python's len count); the
# minimum is 1 for all of them.
EVENT_ID_MAX_LENGTH = 128
DOSSIER_ID_MAX_LENGTH = 128
PROCEDURE_CODE_MAX_LENGTH = 64

# The schema's timestamp pattern. It pins every range but the day of the month, which is
# left to the calendar check.
RFC3339_PATTERN = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_match_rfc3339 = RFC3339_PATTERN.fullmatch
# The registry's code pattern; fullmatch, unlike the schema's `$`, never lets a final newline
# through, so the schema's `(?!\n)` guard is not needed here.
_match_agency_code = CODE_PATTERN.fullmatch

# Fields that each type requires beyond the five every event has.
REQUIRED_FIELDS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "submitted": ("dossier_id", "procedure_code"),
    "received": ("dossier_id", "procedure_code", "channel"),
    "fee_paid": ("dossier_id", "method"),
    "supplement_requested": ("dossier_id",),
    "supplement_received": ("dossier_id",),
    "result_issued": ("dossier_id",),
    "result_returned": ("dossier_id", "delivery"),
    "rejected": ("dossier_id",),
    "withdrawn": ("dossier_id",),
    "voided": ("dossier_id",),
    "heartbeat": (),
}
# Optional fields that the model keeps for each type (the contract's "when" column); any
# other known field is validated and then dropped.
_DOSSIER_EVENT = frozenset({"dossier_id", "supersedes"})
KEPT_FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    "submitted": _DOSSIER_EVENT | {"procedure_code", "channel", "portal"},
    "received": _DOSSIER_EVENT | {"procedure_code", "channel", "digitized", "due_at", "portal"},
    "fee_paid": _DOSSIER_EVENT | {"method", "amount_vnd"},
    "supplement_requested": _DOSSIER_EVENT,
    "supplement_received": _DOSSIER_EVENT | {"in_person"},
    "result_issued": _DOSSIER_EVENT | {"electronic"},
    "result_returned": _DOSSIER_EVENT | {"delivery"},
    "rejected": _DOSSIER_EVENT,
    "withdrawn": _DOSSIER_EVENT,
    "voided": _DOSSIER_EVENT,
    "heartbeat": frozenset(),
}
if not tuple(REQUIRED_FIELDS_BY_TYPE) == tuple(KEPT_FIELDS_BY_TYPE) == EVENT_TYPES:
    raise InvariantError("the field tables of the event types do not list EVENT_TYPES in order")

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class DossierEvent:
    event_id: str
    agency_code: str
    type: str
    occurred_at_us: int  # occurred_at as microseconds since the Unix epoch (UTC)
    dossier_id: str | None = None
    procedure_code: str | None = None
    channel: str | None = None  # online | in_person | postal
    method: str | None = None  # online | in_person
    amount_vnd: int | None = None
    delivery: str | None = None  # online | public_postal | in_person
    electronic: bool = False
    in_person: bool = False
    digitized: bool = False
    due_at_us: int | None = None
    supersedes: str | None = None
    portal: str | None = None  # national | agency


def _make_event_builder() -> Callable[..., DossierEvent]:
    """A constructor of DossierEvent from all its fields in order, for values that are
    already validated.

    A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
    more than a microsecond per event for 15 fields; setting the slots through their
    descriptors costs half as much. DossierEvent has no __post_init__ to skip.
    """
    names = tuple(field.name for field in fields(DossierEvent))
    (set_0, set_1, set_2, set_3, set_4, set_5, set_6, set_7, set_8, set_9, set_10, set_11, set_12, set_13,
     set_14, set_15) = (DossierEvent.__dict__[name].__set__ for name in names)
    new = object.__new__

    def build(
        event_id, agency_code, type, occurred_at_us, dossier_id, procedure_code, channel, method,  # noqa: A002
        amount_vnd, delivery, electronic, in_person, digitized, due_at_us, supersedes, portal,
    ) -> DossierEvent:
        event = new(DossierEvent)
        set_0(event, event_id)
        set_1(event, agency_code)
        set_2(event, type)
        set_3(event, occurred_at_us)
        set_4(event, dossier_id)
        set_5(event, procedure_code)
        set_6(event, channel)
        set_7(event, method)
        set_8(event, amount_vnd)
        set_9(event, delivery)
        set_10(event, electronic)
        set_11(event, in_person)
        set_12(event, digitized)
        set_13(event, due_at_us)
        set_14(event, supersedes)
        set_15(event, portal)
        return event

    # The parameters above must be the fields, in order: a change to DossierEvent that
    # forgets this function fails at import.
    if tuple(inspect.signature(build).parameters) != names or hasattr(DossierEvent, "__post_init__"):
        raise TypeError("_make_event_builder does not match the fields of DossierEvent")
    return build


# DossierEvent from all its fields, in order, of values already validated (the state stage's
# stored and batched events): the same event as the constructor's, at half the cost.
build_dossier_event = _make_event_builder()


def _schema_error(detail: str) -> InvalidEvent:
    return InvalidEvent("schema", detail)


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def rfc3339_to_us(text: str) -> int:
    """An RFC 3339 timestamp with an offset, as exact microseconds since the epoch (UTC).

    Digits beyond the microsecond are truncated (never rounded into the next second).
    Raises InvalidEvent("schema", ...) when the text is not such a timestamp.
    """
    if not isinstance(text, str):
        raise _schema_error(f"{_json_type(text)} is not an RFC 3339 string")
    if _match_rfc3339(text) is None:
        raise _schema_error(f"{text!r} is not an RFC 3339 timestamp with an offset")
    if text[-1] == "z":
        text = text[:-1] + "Z"  # the one spelling the pattern allows and fromisoformat does not
    try:
        # The pattern has pinned the shape and every range but the day of the month, so
        # fromisoformat only adds the calendar check. It truncates fractions past 6 digits.
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _schema_error(f"{text!r} is an impossible date") from None
    return us_of(moment)


def _string(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise _schema_error(f"{name}: {_json_type(value)} is not a string")
    length = len(value)
    if length < 1:
        raise _schema_error(f"{name}: length 0 < 1")
    if length > max_length:
        raise _schema_error(f"{name}: length {length} > {max_length}")
    return value


def _enum(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _schema_error(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _boolean(name: str, value: object) -> bool:
    if value is not True and value is not False:
        raise _schema_error(f"{name}: {_json_type(value)} is not a boolean")
    return value  # type: ignore[return-value]


def _timestamp(name: str, value: object) -> int:
    try:
        return rfc3339_to_us(value)  # type: ignore[arg-type]
    except InvalidEvent as exc:
        raise _schema_error(f"{name}: {exc.detail}") from None


def _amount(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _schema_error(f"amount_vnd: {_json_type(value)} is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise _schema_error(f"amount_vnd: {value!r} is not an integer")
        value = int(value)
    if value < 0:
        raise _schema_error(f"amount_vnd: {value} < 0")
    return value


def event_from_mapping(obj: dict) -> DossierEvent:
    """Validate an already-decoded JSON object against the schema and build the event.

    Raises InvalidEvent("schema", "<field>: <rule>") on the first broken rule found.
    """
    if not isinstance(obj, dict):
        raise _schema_error(f"the event is a JSON {_json_type(obj)}, not an object")
    get = obj.get

    if get("schema") != SCHEMA_ID:
        if "schema" not in obj:
            raise _schema_error("schema: required")
        raise _schema_error(f"schema: {get('schema')!r} is not {SCHEMA_ID!r}")
    kind = get("type")
    if not isinstance(kind, str) or kind not in REQUIRED_FIELDS_BY_TYPE:
        if "type" not in obj:
            raise _schema_error("type: required")
        raise _schema_error(f"type: {kind!r} is not one of {', '.join(EVENT_TYPES)}")
    try:
        event_id = obj["event_id"]
        agency_code = obj["agency_code"]
        occurred_at = obj["occurred_at"]
    except KeyError as missing:
        raise _schema_error(f"{missing.args[0]}: required") from None
    for name in REQUIRED_FIELDS_BY_TYPE[kind]:
        if name not in obj:
            raise _schema_error(f"{name}: required for type {kind}")

    event_id = _string("event_id", event_id, EVENT_ID_MAX_LENGTH)
    if not isinstance(agency_code, str) or _match_agency_code(agency_code) is None:
        raise _schema_error(f"agency_code: {agency_code!r} does not match {CODE_PATTERN.pattern}")
    occurred_at_us = _timestamp("occurred_at", occurred_at)

    # Every known optional field is validated whatever the type; `kept` then decides
    # whether the model carries it.
    kept = KEPT_FIELDS_BY_TYPE[kind]
    dossier_id = procedure_code = channel = method = delivery = supersedes = portal = None
    amount_vnd = due_at_us = None
    electronic = in_person = digitized = False
    if (value := get("dossier_id", _ABSENT)) is not _ABSENT:
        dossier_id = _string("dossier_id", value, DOSSIER_ID_MAX_LENGTH)
    if (value := get("procedure_code", _ABSENT)) is not _ABSENT:
        procedure_code = _string("procedure_code", value, PROCEDURE_CODE_MAX_LENGTH)
    if (value := get("channel", _ABSENT)) is not _ABSENT:
        channel = _enum("channel", value, CHANNELS)
    if (value := get("method", _ABSENT)) is not _ABSENT:
        method = _enum("method", value, PAYMENT_METHODS)
    if (value := get("amount_vnd", _ABSENT)) is not _ABSENT:
        amount_vnd = _amount(value)
    if (value := get("delivery", _ABSENT)) is not _ABSENT:
        delivery = _enum("delivery", value, DELIVERIES)
    if (value := get("electronic", _ABSENT)) is not _ABSENT:
        electronic = _boolean("electronic", value)
    if (value := get("in_person", _ABSENT)) is not _ABSENT:
        in_person = _boolean("in_person", value)
    if (value := get("digitized", _ABSENT)) is not _ABSENT:
        digitized = _boolean("digitized", value)
    if (value := get("due_at", _ABSENT)) is not _ABSENT:
        due_at_us = _timestamp("due_at", value)
    if (value := get("supersedes", _ABSENT)) is not _ABSENT:
        supersedes = _string("supersedes", value, EVENT_ID_MAX_LENGTH)
    if (value := get("portal", _ABSENT)) is not _ABSENT:
        portal = _enum("portal", value, PORTALS)

    return build_dossier_event(
        event_id,
        agency_code,
        kind,
        occurred_at_us,
        dossier_id if "dossier_id" in kept else None,
        procedure_code if "procedure_code" in kept else None,
        channel if "channel" in kept else None,
        method if "method" in kept else None,
        amount_vnd if "amount_vnd" in kept else None,
        delivery if "delivery" in kept else None,
        electronic and "electronic" in kept,
        in_person and "in_person" in kept,
        digitized and "digitized" in kept,
        due_at_us if "due_at" in kept else None,
        supersedes if "supersedes" in kept else None,
        portal if "portal" in kept else None,
    )


def _oversize(raw: bytes) -> InvalidEvent:
    return InvalidEvent("oversize", f"{len(raw)} bytes > {MAX_EVENT_BYTES}")


def _key_mismatch(key: bytes, agency_code: str) -> InvalidEvent:
    shown = key.decode("utf-8", errors="backslashreplace")
    return InvalidEvent("key_mismatch", f"message key {shown!r} != agency_code {agency_code!r}")


def _parse_and_explain(raw: bytes, key: bytes | None) -> DossierEvent:
    """parse_event through decoded JSON: slower than the typed decode, and the one that names
    the broken rule (the typed decode's errors name msgspec's view of it, not the contract's)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise _oversize(raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson rejects invalid UTF-8 too; decoding only on failure keeps the common
        # path to one pass over the bytes.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            raise InvalidEvent("not_utf8", str(decode_error)) from None
        raise InvalidEvent("not_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_json", f"the top level is a JSON {_json_type(obj)}, not an object")
    event = event_from_mapping(obj)
    # agency_code is ASCII, so comparing bytes equals comparing the UTF-8-decoded key, and
    # an undecodable key can never be equal.
    if key is not None and key != event.agency_code.encode():
        raise _key_mismatch(key, event.agency_code)
    return event


# --- the typed decode ---------------------------------------------------------------------

_EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=EVENT_ID_MAX_LENGTH)]
# The optional fields in DossierEvent's order, with their JSON type and the model's value when
# absent. A default is not a type: `"channel": null` is still refused.
_OPTIONAL_FIELDS: tuple[tuple[str, object, object], ...] = (
    ("dossier_id", Annotated[str, msgspec.Meta(min_length=1, max_length=DOSSIER_ID_MAX_LENGTH)], None),
    ("procedure_code", Annotated[str, msgspec.Meta(min_length=1, max_length=PROCEDURE_CODE_MAX_LENGTH)], None),
    ("channel", Literal[CHANNELS], None),
    ("method", Literal[PAYMENT_METHODS], None),
    # Up to 2**63 - 1: beyond, orjson (the explaining path) reads a float, not the exact integer.
    ("amount_vnd", Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)], None),
    ("delivery", Literal[DELIVERIES], None),
    ("electronic", bool, False),
    ("in_person", bool, False),
    ("digitized", bool, False),
    ("due_at", str, None),  # the pattern and the calendar are checked in Python
    ("supersedes", _EventId, None),
    ("portal", Literal[PORTALS], None),
)
# Where the model takes each of them; due_at becomes due_at_us.
if tuple(name for name, _, _ in _OPTIONAL_FIELDS) != tuple(
    "due_at" if field.name == "due_at_us" else field.name for field in fields(DossierEvent)
)[4:]:
    raise InvariantError("_OPTIONAL_FIELDS does not list DossierEvent's optional fields in order")


def _typed_event_struct(kind: str, strict: bool) -> tuple[type, Callable[[object], tuple]]:
    """The Struct of one event type, and the getter of its model's fields in order (with the
    timestamps still as text): a field the type does not keep reads the class's `_absent_*`.
    A strict Struct refuses unknown fields."""
    required = REQUIRED_FIELDS_BY_TYPE[kind]
    kept = KEPT_FIELDS_BY_TYPE[kind]
    struct = msgspec.defstruct(
        f"_{'Strict' if strict else 'Typed'}_{kind}",
        [("schema", Literal[SCHEMA_ID]), ("event_id", _EventId), ("agency_code", str), ("occurred_at", str)]
        + [(name, json_type) if name in required else (name, json_type, absent)
           for name, json_type, absent in _OPTIONAL_FIELDS],
        tag_field="type", tag=kind, kw_only=True, gc=False, forbid_unknown_fields=strict,
        namespace={"_kind": kind, "_absent_none": None, "_absent_false": False},
    )
    getter = attrgetter("event_id", "agency_code", "_kind", "occurred_at", *(
        name if name in kept else ("_absent_false" if absent is False else "_absent_none")
        for name, _, absent in _OPTIONAL_FIELDS
    ))
    return struct, getter


_STRICT = dict(_typed_event_struct(kind, strict=True) for kind in EVENT_TYPES)
_LENIENT = dict(_typed_event_struct(kind, strict=False) for kind in EVENT_TYPES)
_GETTERS = _STRICT | _LENIENT
# msgspec skips an unknown field's value without decoding it, so it lets through what orjson
# (the explaining path's parser) refuses there: invalid UTF-8, a number beyond a double's
# range. Events without unknown fields are decoded whole by the strict decoder; the others are
# parsed by orjson first, then typed by the lenient one.
_decode_strict = msgspec.json.Decoder(Union[tuple(_STRICT)]).decode  # type: ignore[valid-type]
_decode_lenient = msgspec.json.Decoder(Union[tuple(_LENIENT)]).decode  # type: ignore[valid-type]
_DUE_AT = 4 + [name for name, _, _ in _OPTIONAL_FIELDS].index("due_at")  # its index in the model's fields
_fields_of_event = attrgetter(*(field.name for field in fields(DossierEvent)))
_DECODE_ERRORS = (msgspec.MsgspecError, orjson.JSONDecodeError, RecursionError)


def _decode_typed(raw: bytes) -> object:
    try:
        return _decode_strict(raw)
    except _DECODE_ERRORS:
        orjson.loads(raw)  # JSON as the explaining path reads it, or its error
        return _decode_lenient(raw)


def decode_event_fields(raw: bytes, key: bytes | None = None) -> tuple:
    """The fields, in order, of the event parse_event(raw, key) returns: what
    build_dossier_event takes, and the wire form of a batch message, without building it.

    Raises InvalidEvent as parse_event does."""
    if len(raw) > MAX_EVENT_BYTES:
        raise _oversize(raw)
    try:
        typed = _decode_typed(raw)
        values = _GETTERS[type(typed)](typed)
        if _match_agency_code(values[1]) is None:
            raise _schema_error("agency_code")  # the explaining path names the rule
        occurred_at_us = rfc3339_to_us(values[3])
        due_at = typed.due_at  # type: ignore[attr-defined]
        due_at_us = None if due_at is None else rfc3339_to_us(due_at)
    except (*_DECODE_ERRORS, InvalidEvent):
        return _fields_of_event(_parse_and_explain(raw, key))
    if key is not None and key != values[1].encode():
        raise _key_mismatch(key, values[1])
    return (*values[:3], occurred_at_us, *values[4:_DUE_AT], None if values[_DUE_AT] is None else due_at_us,
            *values[_DUE_AT + 1:])


def parse_event(raw: bytes, key: bytes | None = None) -> DossierEvent:
    """Bytes of one message of the input topic to a valid event.

    Raises InvalidEvent with reason ``oversize``, ``not_utf8``, ``not_json``, ``schema`` or
    ``key_mismatch``. Whether the agency is in the registry is checked elsewhere.
    """
    return build_dossier_event(*decode_event_fields(raw, key))
