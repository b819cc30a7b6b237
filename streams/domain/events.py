"""Dossier events: the typed model and a fast validator that agrees with the published
JSON Schema (`schemas/dossier-event.v1.json`) on what it accepts.

The validator is hand-written (no jsonschema at run time) because it runs on every event.
A test generates a corpus and checks that it accepts exactly what jsonschema accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from streams.errors import InvalidEvent

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

CHANNELS = ("online", "in_person", "postal")
PAYMENT_METHODS = ("online", "in_person")
DELIVERIES = ("online", "public_postal", "in_person")

AGENCY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{1,31}$")
RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$")

_TYPE_SET = frozenset(EVENT_TYPES)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class DossierEvent:
    event_id: str
    agency_code: str
    type: str
    occurred_at_us: int  # occurred_at as microseconds since the Unix epoch (UTC)
    dossier_id: str | None = None
    procedure_code: str | None = None
    channel: str | None = None
    method: str | None = None
    amount_vnd: int | None = None
    delivery: str | None = None
    electronic: bool = False
    in_person: bool = False
    digitized: bool = False
    due_at_us: int | None = None
    supersedes: str | None = None


def _fail(detail: str) -> InvalidEvent:
    return InvalidEvent("schema", detail)


def rfc3339_to_us(text: str) -> int:
    """An RFC 3339 timestamp with an offset, as exact integer µs since the epoch (UTC)."""
    if not isinstance(text, str) or not RFC3339.fullmatch(text):
        raise _fail(f"not an RFC 3339 timestamp with offset: {text!r}")
    head, fraction = text[:19], ""
    rest = text[19:]
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end] in "0123456789":
            end += 1
        fraction, rest = rest[1:end], rest[end:]
    offset = "+00:00" if rest in ("Z", "z") else rest
    try:
        moment = datetime.fromisoformat(head.replace("t", "T") + offset)
    except ValueError:
        raise _fail(f"impossible date or time: {text!r}") from None
    if not 0 <= int(offset[1:3]) <= 23 or not 0 <= int(offset[4:6]) <= 59:
        raise _fail(f"bad offset: {text!r}")
    seconds = int((moment - _EPOCH).total_seconds())
    # Sub-microsecond digits are truncated, never rounded into the next second.
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return seconds * 1_000_000 + micros


def us_to_rfc3339(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micros:
        text += f".{micros:06d}"
    return text + "Z"


def _string(obj: dict, name: str, lo: int, hi: int, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if name in obj:
            raise _fail(f"{name}: null is not a string")
        if required:
            raise _fail(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise _fail(f"{name}: must be a string")
    if not lo <= len(value) <= hi:
        raise _fail(f"{name}: length {len(value)} not in {lo}..{hi}")
    return value


def _enum(obj: dict, name: str, allowed: tuple[str, ...], required: bool, kind: str) -> str | None:
    if name not in obj:
        if required:
            raise _fail(f"{name}: required for type {kind}")
        return None
    value = obj[name]
    if not isinstance(value, str) or value not in allowed:
        raise _fail(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _boolean(obj: dict, name: str) -> bool:
    if name not in obj:
        return False
    value = obj[name]
    if value is not True and value is not False:
        raise _fail(f"{name}: must be a boolean")
    return value


def _timestamp(obj: dict, name: str, required: bool) -> int | None:
    if name not in obj:
        if required:
            raise _fail(f"{name}: required")
        return None
    value = obj[name]
    if not isinstance(value, str):
        raise _fail(f"{name}: must be an RFC 3339 string")
    return rfc3339_to_us(value)


def event_from_mapping(obj: dict) -> DossierEvent:
    """Validate a decoded JSON object against the contract and build the event."""
    if not isinstance(obj, dict):
        raise _fail("the event must be a JSON object")
    if obj.get("schema") != SCHEMA_ID or not isinstance(obj.get("schema"), str):
        raise _fail(f"schema: must be {SCHEMA_ID!r}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _TYPE_SET:
        raise _fail(f"type: {kind!r} is not an event type")
    event_id = _string(obj, "event_id", 1, 128, True)
    agency = obj.get("agency_code")
    if not isinstance(agency, str) or not AGENCY_CODE.fullmatch(agency):
        raise _fail(f"agency_code: {agency!r} does not match {AGENCY_CODE.pattern}")
    occurred = _timestamp(obj, "occurred_at", True)
    dossier_id = _string(obj, "dossier_id", 1, 128, kind != "heartbeat")
    procedure = _string(obj, "procedure_code", 1, 64, kind in ("received", "submitted"))
    channel = _enum(obj, "channel", CHANNELS, kind == "received", kind)
    method = _enum(obj, "method", PAYMENT_METHODS, kind == "fee_paid", kind)
    delivery = _enum(obj, "delivery", DELIVERIES, kind == "result_returned", kind)
    amount = obj.get("amount_vnd")
    if "amount_vnd" in obj:
        # Booleans are ints in Python but not integers in JSON Schema; integral floats
        # (1.0) are integers in JSON Schema 2020-12, so they are accepted and normalised.
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise _fail("amount_vnd: must be an integer")
        if isinstance(amount, float):
            if not amount.is_integer():
                raise _fail("amount_vnd: must be an integer")
            amount = int(amount)
        if amount < 0:
            raise _fail("amount_vnd: must be >= 0")
    supersedes = _string(obj, "supersedes", 1, 128, False)
    return DossierEvent(
        event_id=event_id,  # type: ignore[arg-type]
        agency_code=agency,
        type=kind,
        occurred_at_us=occurred,  # type: ignore[arg-type]
        dossier_id=dossier_id,
        procedure_code=procedure,
        channel=channel,
        method=method,
        amount_vnd=amount,
        delivery=delivery,
        electronic=_boolean(obj, "electronic"),
        in_person=_boolean(obj, "in_person"),
        digitized=_boolean(obj, "digitized"),
        due_at_us=_timestamp(obj, "due_at", False),
        supersedes=supersedes,
    )


def parse_event(raw: bytes, key: bytes | None = None) -> DossierEvent:
    """Bytes from the input topic to a valid event, or InvalidEvent with a reason code:
    oversize, not_utf8, not_json, schema, key_mismatch."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("oversize", f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", str(exc)) from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_json", "the top level is not a JSON object")
    event = event_from_mapping(obj)
    if key is not None:
        try:
            decoded = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("key_mismatch", "the message key is not UTF-8") from None
        if decoded != event.agency_code:
            raise InvalidEvent("key_mismatch", f"key {decoded!r} != agency_code {event.agency_code!r}")
    return event
