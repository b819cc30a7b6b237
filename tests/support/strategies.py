"""Hypothesis strategies for input events as producers send them: decoded JSON objects
(dicts) that the schema `schemas/dossier-event.v1.json` accepts.

Encode them with `orjson.dumps` to get message values for `parse_event`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hypothesis import strategies as st

from streams.domain.events import (
    CHANNELS,
    DELIVERIES,
    EVENT_TYPES,
    KEPT_FIELDS_BY_TYPE,
    PAYMENT_METHODS,
    PORTALS,
    REQUIRED_FIELDS_BY_TYPE,
    SCHEMA_ID,
)

DEFAULT_AGENCY_CODES = ("T01", "T35", "BCT", "BTC")

# Offsets in minutes: the common ones often, the extremes sometimes.
_OFFSET_MINUTES = st.one_of(
    st.sampled_from([0, 0, 420, 420, -300, 330, 60, 345]),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)


def _format_rfc3339(wall_time: datetime, offset_minutes: int, fraction: str, utc_as_z: bool, lower: bool) -> str:
    # Not strftime: its %Y does not pad years before 1000 to four digits.
    text = wall_time.replace(microsecond=0).isoformat() + fraction
    if offset_minutes == 0 and utc_as_z:
        suffix = "Z"
    else:
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        suffix = f"{sign}{hours:02d}:{minutes:02d}"
    text += suffix
    # RFC 3339 allows lower-case t and z; producers rarely send them.
    return text.replace("T", "t").replace("Z", "z") if lower else text


def rfc3339_timestamps(
    min_value: datetime = datetime(2000, 1, 1), max_value: datetime = datetime(2035, 12, 31)
) -> st.SearchStrategy[str]:
    """Valid RFC 3339 timestamps with an offset whose wall time is between the bounds
    (naive datetimes), with 0 to 9 fractional digits."""
    return st.builds(
        _format_rfc3339,
        st.datetimes(min_value=min_value, max_value=max_value).map(lambda moment: moment.replace(microsecond=0)),
        _OFFSET_MINUTES,
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda digits: "." + digits)),
        st.booleans(),
        st.integers(0, 9).map(lambda n: n == 0),
    )


timestamps = rfc3339_timestamps()

# Any Unicode text JSON can carry (no lone surrogates, which UTF-8 cannot encode).
_unicode_text = st.characters(codec="utf-8")


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Valid values of a string field of 1..max_size code points: mostly plain ids, some
    arbitrary Unicode, and the longest allowed."""
    return st.one_of(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=24),
        st.text(_unicode_text, min_size=1, max_size=max_size),
        st.text(_unicode_text, min_size=max_size, max_size=max_size),
    )


identifiers = texts(128)


def _as_strategy(values: Sequence[str] | st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return values if isinstance(values, st.SearchStrategy) else st.sampled_from(tuple(values))


# Well-formed values of every optional field, to add fields of other types.
_OPTIONAL_FIELD_VALUES: dict[str, st.SearchStrategy[object]] = {
    "dossier_id": identifiers,
    "procedure_code": texts(64),
    "channel": st.sampled_from(CHANNELS),
    "method": st.sampled_from(PAYMENT_METHODS),
    "amount_vnd": st.one_of(st.integers(0, 10**9), st.sampled_from([0, 10**18, 2**63 - 1])),
    "delivery": st.sampled_from(DELIVERIES),
    "electronic": st.booleans(),
    "in_person": st.booleans(),
    "digitized": st.booleans(),
    "due_at": timestamps,
    "supersedes": identifiers,
    "portal": st.sampled_from(PORTALS),
}
# Integers within 64 bits: orjson, which encodes these events in other tests, refuses more.
_json_integers = st.integers(-(2**63), 2**64 - 1)
_UNKNOWN_FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), _json_integers, st.floats(allow_nan=False, allow_infinity=False),
    st.text(_unicode_text, max_size=10), st.lists(_json_integers, max_size=3), st.just({"nested": [1, "x"]}),
)


def valid_event_dicts(
    types: Sequence[str] | st.SearchStrategy[str] = EVENT_TYPES,
    agency_codes: Sequence[str] | st.SearchStrategy[str] = DEFAULT_AGENCY_CODES,
    dossier_ids: Sequence[str] | st.SearchStrategy[str] | None = None,
    event_ids: Sequence[str] | st.SearchStrategy[str] | None = None,
    occurred_at: st.SearchStrategy[str] | None = None,
    extras: bool = False,
) -> st.SearchStrategy[dict]:
    """Valid event objects of the given `types`.

    `agency_codes`, `dossier_ids`, `event_ids` are sequences to pick from or strategies;
    `occurred_at` a strategy of timestamps (also used for `due_at`). With `extras`, an
    event may also carry unknown fields and well-formed fields of other types, which the
    schema allows and the parser drops.
    """
    # Strategies are built once here, not on every draw: building them costs more than
    # drawing from them.
    kinds = _as_strategy(types)
    agencies = _as_strategy(agency_codes)
    ids = _as_strategy(event_ids) if event_ids is not None else identifiers
    moments = occurred_at if occurred_at is not None else timestamps
    values = dict(_OPTIONAL_FIELD_VALUES, due_at=moments)
    if dossier_ids is not None:
        values["dossier_id"] = _as_strategy(dossier_ids)
    optional_names = {
        kind: sorted(KEPT_FIELDS_BY_TYPE[kind] - set(REQUIRED_FIELDS_BY_TYPE[kind])) for kind in EVENT_TYPES
    }
    any_known_fields = st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True)
    unknown_names = st.lists(st.sampled_from(["note", "source_system", "x-trace", "Type", ""]), max_size=2)
    one_in_three = st.integers(0, 2).map(lambda n: n == 0)

    @st.composite
    def events(draw: st.DrawFn) -> dict:
        kind = draw(kinds)
        event: dict = {
            "schema": SCHEMA_ID,
            "event_id": draw(ids),
            "agency_code": draw(agencies),
            "type": kind,
            "occurred_at": draw(moments),
        }
        for name in REQUIRED_FIELDS_BY_TYPE[kind]:
            event[name] = draw(values[name])
        for name in optional_names[kind]:
            if draw(one_in_three):
                event[name] = draw(values[name])
        if extras:
            for name in draw(any_known_fields):
                event.setdefault(name, draw(values[name]))
            for name in draw(unknown_names):
                event[name] = draw(_UNKNOWN_FIELD_VALUES)
        return event

    return events()
