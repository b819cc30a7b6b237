"""Hypothesis strategies for events as producers send them (JSON objects)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from streams.domain.events import CHANNELS, DELIVERIES, EVENT_TYPES, PAYMENT_METHODS

REQUIRED_BY_TYPE: dict[str, tuple[str, ...]] = {
    "received": ("dossier_id", "procedure_code", "channel"),
    "submitted": ("dossier_id", "procedure_code"),
    "fee_paid": ("dossier_id", "method"),
    "result_returned": ("dossier_id", "delivery"),
    "heartbeat": (),
}

timestamps = st.builds(
    lambda moment, offset_minutes, fraction: _format(moment, offset_minutes, fraction),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 1, 1)),
    st.sampled_from([0, 0, 420, -300, 330, 60]),
    st.sampled_from(["", ".5", ".123", ".123456", ".123456789"]),
)


def _format(moment: datetime, offset_minutes: int, fraction: str) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(microsecond=0, tzinfo=zone).strftime("%Y-%m-%dT%H:%M:%S") + fraction
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


identifiers = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def valid_event_dicts(
    draw: st.DrawFn,
    types: tuple[str, ...] = EVENT_TYPES,
    agency_codes: tuple[str, ...] = ("T01", "T35", "BCT", "BTC"),
    dossier_ids: st.SearchStrategy[str] | None = None,
) -> dict:
    kind = draw(st.sampled_from(types))
    event: dict = {
        "schema": "emc.dossier-event.v1",
        "event_id": draw(identifiers),
        "agency_code": draw(st.sampled_from(agency_codes)),
        "type": kind,
        "occurred_at": draw(timestamps),
    }
    if kind != "heartbeat":
        event["dossier_id"] = draw(dossier_ids if dossier_ids is not None else identifiers)
    if kind in ("received", "submitted"):
        event["procedure_code"] = draw(st.text(min_size=1, max_size=20))
    if kind == "received" or (kind == "submitted" and draw(st.booleans())):
        event["channel"] = draw(st.sampled_from(CHANNELS))
    if kind == "received":
        if draw(st.booleans()):
            event["digitized"] = draw(st.booleans())
        if draw(st.booleans()):
            event["due_at"] = draw(timestamps)
    if kind == "fee_paid":
        event["method"] = draw(st.sampled_from(PAYMENT_METHODS))
        if draw(st.booleans()):
            event["amount_vnd"] = draw(st.integers(0, 10**9))
    if kind == "result_returned":
        event["delivery"] = draw(st.sampled_from(DELIVERIES))
    if kind == "result_issued" and draw(st.booleans()):
        event["electronic"] = draw(st.booleans())
    if kind == "supplement_received" and draw(st.booleans()):
        event["in_person"] = draw(st.booleans())
    if kind != "heartbeat" and draw(st.integers(0, 4)) == 0:
        event["supersedes"] = draw(identifiers)
    return event
