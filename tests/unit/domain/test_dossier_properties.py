"""Property tests of the classification (contract section 2): order, duplicates, corrections."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streams.domain.dossier import (
    _earliest,
    classify,
    counts_by_period,
    counts_of_applied,
    counts_of_days,
    dossier_counts,
    is_count_neutral,
    is_procedure_field,
    live_events,
    row_day_counts_of_applied,
    row_day_counts_one_pass,
    unique_events,
)
from streams.domain.events import DossierEvent

T0 = 1_735_700_000_000_000  # 2025-01-01T03:33:20Z
HOUR = 3_600_000_000

times = st.integers(T0 - 48 * HOUR, T0 + 400 * 24 * HOUR)


@st.composite
def dossier_event(draw: st.DrawFn, event_id: str, kind: str | None = None) -> DossierEvent:
    kind = kind or draw(st.sampled_from([
        "submitted", "received", "fee_paid", "supplement_requested", "supplement_received",
        "result_issued", "result_returned", "rejected", "withdrawn", "voided",
    ]))
    return DossierEvent(
        event_id=event_id,
        agency_code="T35",
        type=kind,
        occurred_at_us=draw(times),
        dossier_id="D1",
        procedure_code=draw(st.sampled_from(["1.00309", "2.00014"])) if kind in ("received", "submitted") else None,
        channel=draw(st.sampled_from(["online", "in_person", "postal"])) if kind == "received"
        else draw(st.sampled_from([None, "online", "in_person", "postal"])) if kind == "submitted" else None,
        method=draw(st.sampled_from(["online", "in_person"])) if kind == "fee_paid" else None,
        amount_vnd=draw(st.integers(0, 500_000)) if kind == "fee_paid" else None,
        delivery=draw(st.sampled_from(["online", "public_postal", "in_person"])) if kind == "result_returned" else None,
        electronic=draw(st.booleans()) if kind == "result_issued" else False,
        in_person=draw(st.booleans()) if kind == "supplement_received" else False,
        digitized=draw(st.booleans()) if kind == "received" else False,
        due_at_us=draw(st.one_of(st.none(), times)) if kind == "received" else None,
        supersedes=None,
        portal=draw(st.sampled_from([None, "national", "agency"])) if kind in ("received", "submitted") else None,
    )


@st.composite
def dossier_history(draw: st.DrawFn) -> list[DossierEvent]:
    """A dossier's distinct events, some correcting earlier ones."""
    n = draw(st.integers(1, 9))
    events = [draw(dossier_event(f"e{i}")) for i in range(n)]
    corrected = []
    for i, event in enumerate(events):
        if i and draw(st.booleans()) and draw(st.booleans()):
            target = draw(st.integers(0, n - 1))
            event = DossierEvent(**{**_fields(event), "supersedes": f"e{target}" if draw(st.booleans()) else "not-seen-yet"})
        corrected.append(event)
    return corrected


def _fields(event: DossierEvent) -> dict:
    return {name: getattr(event, name) for name in DossierEvent.__slots__}


@settings(max_examples=400)
@given(history=dossier_history(), data=st.data())
def test_any_order_with_any_duplicates_gives_the_same_counts(history: list[DossierEvent], data: st.DataObject) -> None:
    with_duplicates = history + data.draw(st.lists(st.sampled_from(history), max_size=6))
    shuffled = data.draw(st.permutations(with_duplicates))
    assert counts_of_applied(unique_events(shuffled)) == counts_of_applied(history)


@settings(max_examples=300)
@given(history=dossier_history(), data=st.data())
def test_a_correction_before_or_after_its_target_gives_the_same_counts(history: list[DossierEvent], data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(history))
    correction = data.draw(dossier_event("fix", kind=target.type))
    correction = DossierEvent(**{**_fields(correction), "supersedes": target.event_id})
    before = counts_of_applied([correction, *history])
    after = counts_of_applied([*history, correction])
    assert before == after
    assert target not in live_events([*history, correction])


@settings(max_examples=300)
@given(history=dossier_history(), data=st.data())
def test_a_live_void_in_any_position_removes_every_count(history: list[DossierEvent], data: st.DataObject) -> None:
    void = data.draw(dossier_event("void", kind="voided"))
    position = data.draw(st.integers(0, len(history)))
    assert counts_of_applied([*history[:position], void, *history[position:]]) == {}


@settings(max_examples=300)
@given(history=dossier_history())
def test_counts_are_consistent_in_every_period(history: list[DossierEvent]) -> None:
    counts = counts_of_applied(history)
    periods = {period for period, _ in counts}
    for period in periods:
        get = lambda field: counts.get((period, field), 0)  # noqa: E731
        assert get("resolved") == sum(get(m) for m in ("full_online", "partial_online", "offline", "unclassified"))
        assert get("resolved") == get("completed") + get("rejected")
        assert get("received") == sum(get(f"received_{c}") for c in ("online", "in_person", "postal", "unknown"))
        assert get("on_time") + get("late") <= get("resolved")
        assert get("electronic_results") <= get("completed")
        assert get("digitized") <= get("received")
        assert get("payments_online") <= get("payments")
        assert get("payment_amount_online_vnd") <= get("payment_amount_vnd")
        assert get("resolved") <= 1 and get("received") <= 1 and get("withdrawn") <= 1


def _event(event_id: str, kind: str, at: int, **fields: object) -> DossierEvent:
    return DossierEvent(event_id=event_id, agency_code="T35", type=kind, occurred_at_us=at, dossier_id="D1", **fields)


def test_full_online_needs_online_channel_no_counter_step_and_online_delivery() -> None:
    received = _event("r", "received", T0, channel="online", procedure_code="1")
    paid_online = _event("p", "fee_paid", T0 + HOUR, method="online", amount_vnd=50_000)
    returned = _event("x", "result_returned", T0 + 2 * HOUR, delivery="public_postal")
    assert classify([received, paid_online, returned]).mode == "full_online"
    at_counter = _event("p2", "fee_paid", T0 + HOUR, method="in_person")
    assert classify([received, at_counter, returned]).mode == "partial_online"
    in_person = _event("x2", "result_returned", T0 + 2 * HOUR, delivery="in_person")
    assert classify([received, in_person]).mode == "partial_online"
    postal = _event("r2", "received", T0, channel="postal", procedure_code="1")
    assert classify([postal, returned]).mode == "offline"
    assert classify([returned]).mode == "unclassified"


def test_channel_comes_from_the_latest_received_with_ties_to_the_greater_event_id() -> None:
    a = _event("a", "received", T0, channel="in_person", procedure_code="1")
    b = _event("b", "received", T0, channel="online", procedure_code="1")
    assert classify([a, b]).channel == "online"
    assert classify([b, a]).channel == "online"
    submitted = _event("s", "submitted", T0 + HOUR, channel="postal", procedure_code="1")
    assert classify([submitted]).channel == "postal"
    assert classify([a, submitted]).channel == "in_person"  # a received beats any submitted


def test_resolution_is_the_earliest_result_returned_else_the_earliest_rejection() -> None:
    received = _event("r", "received", T0, channel="online", procedure_code="1")
    rejected = _event("j", "rejected", T0 + HOUR)
    returned = _event("x", "result_returned", T0 + 5 * HOUR, delivery="online")
    c = classify([received, rejected, returned])
    assert (c.outcome, c.resolved_at_us) == ("completed", T0 + 5 * HOUR)
    c = classify([received, rejected])
    assert (c.outcome, c.resolved_at_us) == ("rejected", T0 + HOUR)


def test_a_correction_of_a_correction_leaves_both_earlier_events_dead() -> None:
    first = _event("r1", "received", T0, channel="online", procedure_code="1")
    second = _event("r2", "received", T0, channel="postal", procedure_code="1", supersedes="r1")
    third = _event("r3", "received", T0, channel="in_person", procedure_code="1", supersedes="r2")
    assert [e.event_id for e in live_events([first, second, third])] == ["r3"]


def test_an_event_at_17h_utc_belongs_to_the_next_local_day() -> None:
    # 2025-04-30T17:30:00Z is 2025-05-01 00:30 in Hanoi.
    at = 1_746_034_200_000_000
    received = _event("r", "received", at, channel="online", procedure_code="1")
    counts = dossier_counts([received])
    assert counts[("2025-05-01", "received")] == 1
    assert counts[("2025-05", "received")] == 1
    assert counts[("2025-Q2", "received")] == 1
    assert ("2025-04-30", "received") not in counts


def _at(event_id: str, kind: str, hour: int, **fields: object) -> DossierEvent:
    return DossierEvent(event_id=event_id, agency_code="T35", type=kind, occurred_at_us=T0 + hour * HOUR,
                        dossier_id="D1", **fields)


def test_national_portal_counts_online_dossiers_received_through_it_dated_like_received() -> None:
    submitted = _at("s", "submitted", 0, procedure_code="1.00309", channel="online", portal="national")
    received = _at("r", "received", 30, procedure_code="1.00309", channel="online")
    counts = counts_of_applied([received, submitted])
    day = "2025-01-02"  # received at T0 + 30 h, local time
    assert counts[(day, "received")] == counts[(day, "received_national_portal")] == 1
    # The received event's own portal wins over the submitted one's.
    agency_portal = _at("r2", "received", 31, procedure_code="1.00309", channel="online", portal="agency")
    assert ("2025", "received_national_portal") not in counts_of_applied([received, submitted, agency_portal])
    # Only online dossiers: a counter receipt of a dossier first submitted on the portal is not one.
    at_counter = _at("r3", "received", 30, procedure_code="1.00309", channel="in_person", supersedes="r")
    assert ("2025", "received_national_portal") not in counts_of_applied([received, submitted, at_counter])
    # Without any portal field the dossier is simply not counted as a national-portal one.
    assert ("2025", "received_national_portal") not in counts_of_applied([received])


@given(dossier_history())
def test_national_portal_dossiers_are_a_part_of_the_online_received(events: list[DossierEvent]) -> None:
    counts = counts_of_applied(events)
    for (period, name), value in counts.items():
        if name == "received_national_portal":
            assert 0 < value <= counts[(period, "received_online")]


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abcdef")), max_size=6, unique_by=lambda t: t[1]))
def test_earliest_is_the_smallest_time_then_the_greatest_event_id(times_and_ids: list[tuple[int, str]]) -> None:
    events = [DossierEvent(event_id, "T35", "withdrawn", T0 + t, "D1") for t, event_id in times_and_ids]
    by_id_descending = sorted(events, key=lambda e: e.event_id, reverse=True)
    expected = sorted(by_id_descending, key=lambda e: e.occurred_at_us)[0] if events else None  # sort is stable
    assert _earliest(events) == expected


day_counts = st.dictionaries(
    st.tuples(st.integers(20_000, 20_800), st.sampled_from(["received", "resolved", "late", "r:1.00309", "o:2.00014"])),
    st.integers(-3, 3), max_size=12)


@settings(max_examples=300)
@given(day_counts=day_counts)
def test_counts_by_period_is_counts_of_days_grouped_by_period_and_split_by_kind(day_counts: dict) -> None:
    counts, procedures = counts_by_period(day_counts)
    expected: tuple[dict, dict] = ({}, {})
    for (period, name), n in counts_of_days(day_counts).items():
        expected[is_procedure_field(name)].setdefault(period, {})[name] = n
    assert (counts, procedures) == expected


@settings(max_examples=400)
@given(history=dossier_history(), data=st.data())
def test_an_event_said_count_neutral_changes_no_count_of_any_dossier(history: list[DossierEvent], data: st.DataObject) -> None:
    # Its id may be one a correction in the history already names ("not-seen-yet").
    event_id = data.draw(st.sampled_from(["new", "not-seen-yet"]))
    event = data.draw(dossier_event(event_id, kind=data.draw(st.sampled_from(
        ["supplement_requested", "result_issued", "result_issued", "received", "fee_paid", "supplement_received"]))))
    if data.draw(st.booleans()):
        event = DossierEvent(**{**_fields(event), "supersedes": data.draw(st.sampled_from([e.event_id for e in history]))})
    assume(is_count_neutral(event))
    assert row_day_counts_of_applied([*history, event]) == row_day_counts_of_applied(history)
    assert row_day_counts_of_applied([event]) == {}


def test_count_neutral_events_are_the_ones_no_rule_reads() -> None:
    base = {"event_id": "n", "agency_code": "T35", "occurred_at_us": T0, "dossier_id": "D1"}
    assert is_count_neutral(DossierEvent(**base, type="supplement_requested"))
    assert is_count_neutral(DossierEvent(**base, type="result_issued"))
    assert not is_count_neutral(DossierEvent(**base, type="result_issued", electronic=True))
    assert not is_count_neutral(DossierEvent(**base, type="supplement_requested", supersedes="x"))
    assert not any(is_count_neutral(DossierEvent(**base, type=t)) for t in (
        "submitted", "received", "fee_paid", "supplement_received", "result_returned", "rejected", "withdrawn", "voided"))


@settings(max_examples=1000)
@given(history=dossier_history(), data=st.data())
def test_the_one_pass_row_counts_equal_the_reference_rules(history: list[DossierEvent], data: st.DataObject) -> None:
    if data.draw(st.booleans()):  # voids, and events of the same instant (the tie rules)
        history = [*history, data.draw(dossier_event("v", kind="voided"))]
    if data.draw(st.booleans()):
        at = history[0].occurred_at_us
        history = [DossierEvent(**{**_fields(e), "occurred_at_us": at}) for e in history]
    applied = data.draw(st.permutations(history))
    assert row_day_counts_one_pass(applied) == row_day_counts_of_applied(applied)
    for cut in range(len(applied)):  # every prefix, as the state stage classifies them
        assert row_day_counts_one_pass(applied[:cut]) == row_day_counts_of_applied(applied[:cut])
