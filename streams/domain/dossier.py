"""A dossier's classification and counts as a pure function of its events (contract section 2-3).

Everything here is order-independent by construction: the live set is computed from the
*set* of applied events, and every choice among live events ("latest received", "earliest
result") is a total order on (occurred_at, event_id), so the same set gives the same counts
whatever order the events arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache
from typing import NamedTuple

from streams.domain.events import DossierEvent
from streams.domain.instants import FIXED_OFFSET_SINCE_US, US_PER_DAY, VN_OFFSET_US, local_date_of_us
from streams.domain.periods import periods_of_day

COUNT_FIELDS: tuple[str, ...] = (
    "received",
    "received_online",
    "received_in_person",
    "received_postal",
    "received_unknown",
    "received_national_portal",
    "digitized",
    "resolved",
    "full_online",
    "partial_online",
    "offline",
    "unclassified",
    "completed",
    "rejected",
    "on_time",
    "late",
    "electronic_results",
    "withdrawn",
    "payments",
    "payments_online",
    "payment_amount_vnd",
    "payment_amount_online_vnd",
)
MODES: tuple[str, ...] = ("full_online", "partial_online", "offline", "unclassified")

# Per-procedure counts (indicator 2) are booked beside the counts above, in fields named by a
# prefix and the procedure code: dossiers received, and received online, per procedure. They
# never reach Redis as such; the snapshot turns them into numbers of procedures with the
# catalogue (streams/domain/catalogue.py). The prefixes hold no character of COUNT_FIELDS'
# names but ':' so the two kinds of field can never be confused.
PROCEDURE_RECEIVED_PREFIX = "r:"
PROCEDURE_RECEIVED_ONLINE_PREFIX = "o:"
_PROCEDURE_PREFIXES = (PROCEDURE_RECEIVED_PREFIX, PROCEDURE_RECEIVED_ONLINE_PREFIX)

# (period, count field) -> value. Every dated contribution is booked in its day, month,
# quarter and year at once, so that each period's row is directly readable.
Counts = dict[tuple[str, str], int]
# (local day number, count field) -> value: the same contributions before they are spread
# over their four periods. A dossier's counts are computed and compared in this form (4 times
# fewer entries), and only a difference is spread (`counts_of_days`).
DayCounts = dict[tuple[int, str], int]

# Since 1975-06-13 Vietnam has been UTC+07:00 without exception (FIXED_OFFSET_SINCE_US); before
# that the tz database knows other offsets, so older instants take the slow, exact path.
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=65_536)
def _periods_of_local_day_number(day_number: int) -> tuple[str, str, str, str]:
    return periods_of_day(date.fromordinal(_EPOCH_ORDINAL + day_number))


def periods_of_day_number(day_number: int) -> tuple[str, str, str, str]:
    """Day, month, quarter and year periods of a local day number (`local_day_number`)."""
    return _periods_of_local_day_number(day_number)


def local_day_number(epoch_us: int) -> int:
    """The Asia/Ho_Chi_Minh calendar day of an instant, as days since 1970-01-01."""
    if epoch_us >= FIXED_OFFSET_SINCE_US:
        return (epoch_us + VN_OFFSET_US) // US_PER_DAY
    return local_date_of_us(epoch_us).toordinal() - _EPOCH_ORDINAL


def periods_at(epoch_us: int) -> tuple[str, str, str, str]:
    """Day, month, quarter and year periods (Asia/Ho_Chi_Minh) of an instant."""
    return _periods_of_local_day_number(local_day_number(epoch_us))


def _order_key(event: DossierEvent) -> tuple[int, str]:
    return (event.occurred_at_us, event.event_id)


def _latest(events: list[DossierEvent]) -> DossierEvent | None:
    # Ties on occurred_at go to the greater event_id (contract section 2).
    if len(events) <= 1:
        return events[0] if events else None
    return max(events, key=_order_key)


def _earliest(events: list[DossierEvent]) -> DossierEvent | None:
    # The same tie rule, so that "earliest" is also a total order: smallest time, and among
    # equal times the greater event_id.
    if len(events) <= 1:
        return events[0] if events else None
    first_us = min(e.occurred_at_us for e in events)
    return max((e for e in events if e.occurred_at_us == first_us), key=_event_id)


def _event_id(event: DossierEvent) -> str:
    return event.event_id


def unique_events(events: Iterable[DossierEvent]) -> list[DossierEvent]:
    """The applied events: the first event of each event_id, duplicates dropped."""
    seen: dict[str, DossierEvent] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def live_events(applied: Iterable[DossierEvent]) -> list[DossierEvent]:
    """Applied events not named by the `supersedes` of any applied event of the dossier.

    A correction of a correction kills both earlier events: superseding is checked against
    every applied event, live or not.
    """
    applied = list(applied)
    superseded = {e.supersedes for e in applied if e.supersedes is not None}
    return [e for e in applied if e.event_id not in superseded]


class Classification(NamedTuple):
    """What section 2 of the contract says about one dossier.

    A named tuple rather than a frozen dataclass: as immutable, and built in a third of the
    time (a frozen dataclass sets its 12 fields through object.__setattr__), once per dossier
    classified: per event applied, per dossier the reconcile endpoint answers."""

    voided: bool
    channel: str  # online | in_person | postal | unknown
    mode: str  # one of MODES
    in_person_step: bool
    outcome: str | None  # completed | rejected | None
    resolved_at_us: int | None
    withdrawn_at_us: int | None
    received_at_us: int | None
    received_event: DossierEvent | None  # the earliest live received (else submitted)
    portal: str  # national | agency | unknown
    resolution_event: DossierEvent | None
    channel_event: DossierEvent | None  # the live event the channel was taken from


def is_in_person_step(event: DossierEvent, resolution: DossierEvent | None) -> bool:
    """Whether a live event is an in-person step of its dossier (contract section 2): a fee paid
    in person, a supplement handed in at a counter, or the resolution when it is a result
    returned in person. `resolution` is the dossier's resolution event (None: unresolved)."""
    if event.type == "fee_paid":
        return event.method == "in_person"
    if event.type == "supplement_received":
        return bool(event.in_person)
    return (event.type == "result_returned" and resolution is not None and event.event_id == resolution.event_id
            and event.delivery == "in_person")


def _channel(received: list[DossierEvent], submitted: list[DossierEvent]) -> tuple[DossierEvent | None, str]:
    """The live event the channel is taken from (the latest received, else the latest submitted
    that names one) and the channel, "unknown" without one."""
    source = _latest(received) or _latest([e for e in submitted if e.channel is not None])
    return source, source.channel if source is not None and source.channel else "unknown"


def _resolution(by_type: Mapping[str, list[DossierEvent]]) -> tuple[DossierEvent | None, str | None]:
    """The resolution event (the earliest result returned, else the earliest rejection) and its outcome."""
    resolution = _earliest(by_type.get("result_returned", []))
    if resolution is not None:
        return resolution, "completed"
    resolution = _earliest(by_type.get("rejected", []))
    return resolution, "rejected" if resolution is not None else None


def classify(live: list[DossierEvent]) -> Classification:
    by_type: dict[str, list[DossierEvent]] = {}
    for event in live:
        by_type.setdefault(event.type, []).append(event)

    received = by_type.get("received", [])
    submitted = by_type.get("submitted", [])
    channel_source, channel = _channel(received, submitted)
    resolution, outcome = _resolution(by_type)

    in_person_step = any(
        is_in_person_step(e, resolution)
        for e in (*by_type.get("fee_paid", ()), *by_type.get("supplement_received", ()), *([resolution] if resolution else ()))
    )

    if channel == "unknown":
        mode = "unclassified"
    elif channel in ("in_person", "postal"):
        mode = "offline"
    elif in_person_step:
        mode = "partial_online"
    else:
        mode = "full_online"

    # The portal, like the channel: the latest live received that names one, else the latest
    # live submitted that does (a back office often records receipt without the portal).
    portal_source = _latest([e for e in received if e.portal is not None]) or _latest(
        [e for e in submitted if e.portal is not None])
    portal = portal_source.portal if portal_source is not None and portal_source.portal else "unknown"

    withdrawn = _earliest(by_type.get("withdrawn", [])) if resolution is None else None
    first_received = _earliest(received) or _earliest(submitted)
    return Classification(
        voided=bool(by_type.get("voided")),
        channel=channel,
        mode=mode,
        in_person_step=in_person_step,
        outcome=outcome,
        resolved_at_us=resolution.occurred_at_us if resolution is not None else None,
        withdrawn_at_us=withdrawn.occurred_at_us if withdrawn is not None else None,
        received_at_us=first_received.occurred_at_us if first_received is not None else None,
        received_event=first_received,
        resolution_event=resolution,
        channel_event=channel_source,
        portal=portal,
    )


def _book(counts: DayCounts, day: int, field: str, amount: int = 1) -> None:
    """Add to a count of a local day (`local_day_number`, computed once per instant by the caller)."""
    if amount == 0:
        return
    key = (day, field)
    counts[key] = counts.get(key, 0) + amount


def counts_of_days(day_counts: Mapping[tuple[int, str], int]) -> Counts:
    """Day-keyed counts (or differences) spread over their day, month, quarter and year,
    without zero entries (a difference that moves a count within a month is 0 for the month)."""
    counts: Counts = {}
    for (day, field), amount in day_counts.items():
        for period in _periods_of_local_day_number(day):
            key = (period, field)
            counts[key] = counts.get(key, 0) + amount
    return {key: n for key, n in counts.items() if n}


# Period -> count field -> value: counts spread over their periods and grouped by the row
# (period) they are folded into.
PeriodCounts = dict[str, dict[str, int]]


def counts_by_period(day_counts: Mapping[tuple[int, str], int]) -> tuple[PeriodCounts, PeriodCounts]:
    """`counts_of_days` grouped by period and split into the counts of the contract and the
    per-procedure counts (`is_procedure_field`), in one pass: what the state stage folds into
    its counter and procedure rows. No zero entries, and no period left without one."""
    counts: PeriodCounts = {}
    procedures: PeriodCounts = {}
    days = set()
    for (day, field), amount in day_counts.items():
        if not amount:
            continue
        days.add(day)
        by_period = procedures if field.startswith(_PROCEDURE_PREFIXES) else counts
        for period in _periods_of_local_day_number(day):
            fields = by_period.get(period)
            if fields is None:
                by_period[period] = {field: amount}
            else:
                fields[field] = fields.get(field, 0) + amount
    if len(days) > 1:  # amounts of different days can cancel out in a common period
        return _without_zeros(counts), _without_zeros(procedures)
    return counts, procedures  # one day: each field of a period has exactly one nonzero amount


def _without_zeros(by_period: PeriodCounts) -> PeriodCounts:
    kept: PeriodCounts = {}
    for period, fields in by_period.items():
        nonzero = {name: n for name, n in fields.items() if n}
        if nonzero:
            kept[period] = nonzero
    return kept


def dossier_counts(live: list[DossierEvent]) -> Counts:
    """Every count this dossier contributes, keyed by (period, field). Voided: nothing."""
    counts: DayCounts = {}
    if live:
        _book_dossier(counts, live, classify(live))
    return counts_of_days(counts)


def _book_dossier(counts: DayCounts, live: list[DossierEvent], c: Classification) -> None:
    if c.voided:
        return

    if c.received_at_us is not None:
        received_day = local_day_number(c.received_at_us)
        _book(counts, received_day, "received")
        _book(counts, received_day, f"received_{c.channel}")
        if c.channel == "online" and c.portal == "national":
            _book(counts, received_day, "received_national_portal")
        earliest_received = _earliest([e for e in live if e.type == "received"])
        if earliest_received is not None and earliest_received.digitized:
            _book(counts, received_day, "digitized")

    if c.resolved_at_us is not None and c.outcome is not None:
        at = c.resolved_at_us
        resolved_day = local_day_number(at)
        _book(counts, resolved_day, "resolved")
        _book(counts, resolved_day, c.mode)
        _book(counts, resolved_day, c.outcome)
        latest_received = _latest([e for e in live if e.type == "received"])
        if latest_received is not None and latest_received.due_at_us is not None:
            _book(counts, resolved_day, "on_time" if at <= latest_received.due_at_us else "late")
        if c.outcome == "completed" and any(e.type == "result_issued" and e.electronic for e in live):
            _book(counts, resolved_day, "electronic_results")

    if c.withdrawn_at_us is not None:
        _book(counts, local_day_number(c.withdrawn_at_us), "withdrawn")

    for payment in (e for e in live if e.type == "fee_paid"):
        online = payment.method == "online"
        amount = payment.amount_vnd or 0
        paid_day = local_day_number(payment.occurred_at_us)
        _book(counts, paid_day, "payments")
        _book(counts, paid_day, "payment_amount_vnd", amount)
        if online:
            _book(counts, paid_day, "payments_online")
            _book(counts, paid_day, "payment_amount_online_vnd", amount)


def counts_of_applied(applied: Iterable[DossierEvent]) -> Counts:
    """Counts of a dossier from its applied events (duplicates already removed)."""
    return dossier_counts(live_events(applied))


def procedure_counts(live: list[DossierEvent]) -> Counts:
    """The dossier's per-procedure counts: one received (and, when its channel is online, one
    received online) for its procedure, dated as `received`. Voided: nothing.

    The procedure is that of the event that dates the receipt (the earliest live received,
    else submitted), so a correction of that event moves the dossier to the corrected code.
    """
    counts: DayCounts = {}
    if live:
        _book_procedure(counts, classify(live))
    return counts_of_days(counts)


def _book_procedure(counts: DayCounts, c: Classification) -> None:
    if c.voided or c.received_at_us is None or c.received_event is None or c.received_event.procedure_code is None:
        return
    code = c.received_event.procedure_code
    received_day = local_day_number(c.received_at_us)
    _book(counts, received_day, PROCEDURE_RECEIVED_PREFIX + code)
    if c.channel == "online":
        _book(counts, received_day, PROCEDURE_RECEIVED_ONLINE_PREFIX + code)


def row_day_counts_of_applied(applied: Iterable[DossierEvent]) -> DayCounts:
    """Everything a dossier contributes to its agency's counter rows (the counts of the
    contract and the per-procedure counts) by local day, from one classification."""
    live = live_events(applied)
    counts: DayCounts = {}
    if live:
        c = classify(live)
        _book_dossier(counts, live, c)
        _book_procedure(counts, c)
    return counts


def is_count_neutral(event: DossierEvent) -> bool:
    """Whether adding this event to a dossier leaves every count of the dossier as it was: it
    corrects nothing, and no rule above reads an event like it (a supplement request; a result
    issued on paper: only an electronic one counts). The state stage then needs no
    classification. It must follow the rules: a property test adds such events to histories."""
    return event.supersedes is None and (
        event.type == "supplement_requested" or (event.type == "result_issued" and not event.electronic))


def row_day_counts_one_pass(applied: list[DossierEvent]) -> DayCounts:
    """`row_day_counts_of_applied`, computed in one pass over the events: the state stage's
    form (once per event applied). The same rules, without the intermediate `Classification`
    and with the live events grouped by type once for every rule; a property test checks that
    it always equals `row_day_counts_of_applied`, which stays the reference the batch
    computation (tests/support/oracle.py) uses."""
    superseded = {e.supersedes for e in applied if e.supersedes is not None}
    by_type: dict[str, list[DossierEvent]] = {}
    for event in applied:
        if event.event_id not in superseded:
            kind = by_type.get(event.type)
            if kind is None:
                by_type[event.type] = [event]
            else:
                kind.append(event)
    counts: DayCounts = {}
    if not by_type or "voided" in by_type:  # no live event, or voided: nothing at all
        return counts

    received = by_type.get("received", [])
    submitted = by_type.get("submitted", [])
    channel_source, channel = _channel(received, submitted)
    resolution, outcome = _resolution(by_type)

    # Every field below is booked once, but the payments (one per fee paid): direct writes.
    first_received = _earliest(received) or _earliest(submitted)
    if first_received is not None:
        received_day = local_day_number(first_received.occurred_at_us)
        counts[(received_day, "received")] = 1
        counts[(received_day, "received_" + channel)] = 1
        if channel == "online":
            portal_source = _latest([e for e in received if e.portal is not None]) or _latest(
                [e for e in submitted if e.portal is not None])
            if portal_source is not None and portal_source.portal == "national":
                counts[(received_day, "received_national_portal")] = 1
        if received and first_received.digitized:  # first_received is the earliest received then
            counts[(received_day, "digitized")] = 1
        code = first_received.procedure_code
        if code is not None:
            counts[(received_day, PROCEDURE_RECEIVED_PREFIX + code)] = 1
            if channel == "online":
                counts[(received_day, PROCEDURE_RECEIVED_ONLINE_PREFIX + code)] = 1

    if resolution is not None:
        if channel == "unknown":
            mode = "unclassified"
        elif channel in ("in_person", "postal"):
            mode = "offline"
        elif any(is_in_person_step(e, resolution)
                 for e in (*by_type.get("fee_paid", ()), *by_type.get("supplement_received", ()), resolution)):
            mode = "partial_online"
        else:
            mode = "full_online"
        at = resolution.occurred_at_us
        resolved_day = local_day_number(at)
        counts[(resolved_day, "resolved")] = 1
        counts[(resolved_day, mode)] = 1
        counts[(resolved_day, outcome)] = 1  # type: ignore[index]
        latest_received = _latest(received)
        if latest_received is not None and latest_received.due_at_us is not None:
            counts[(resolved_day, "on_time" if at <= latest_received.due_at_us else "late")] = 1
        if outcome == "completed" and any(e.electronic for e in by_type.get("result_issued", ())):
            counts[(resolved_day, "electronic_results")] = 1
    else:
        withdrawn = _earliest(by_type.get("withdrawn", []))
        if withdrawn is not None:
            counts[(local_day_number(withdrawn.occurred_at_us), "withdrawn")] = 1

    for payment in by_type.get("fee_paid", ()):
        amount = payment.amount_vnd or 0
        paid_day = local_day_number(payment.occurred_at_us)
        _book(counts, paid_day, "payments")
        _book(counts, paid_day, "payment_amount_vnd", amount)
        if payment.method == "online":
            _book(counts, paid_day, "payments_online")
            _book(counts, paid_day, "payment_amount_online_vnd", amount)
    return counts


def row_counts_of_applied(applied: Iterable[DossierEvent]) -> Counts:
    """Everything a dossier contributes to its agency's counter rows: the counts of the
    contract and the per-procedure counts."""
    return counts_of_days(row_day_counts_of_applied(applied))


def is_procedure_field(name: str) -> bool:
    return name.startswith(_PROCEDURE_PREFIXES)


def counts_delta(old: Mapping[tuple, int], new: Mapping[tuple, int]) -> dict:
    """new - old, without zero entries (of Counts or of DayCounts)."""
    delta: dict = {}
    for key, value in new.items():
        diff = value - old.get(key, 0)
        if diff:
            delta[key] = diff
    for key, value in old.items():
        if key not in new and value:
            delta[key] = -value
    return delta


def full_online_rate(full_online: int, resolved: int) -> float | None:
    """The headline rate; undefined (None) when nothing was resolved."""
    return full_online / resolved if resolved > 0 else None
