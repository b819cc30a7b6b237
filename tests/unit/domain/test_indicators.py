"""Secondary indicators: shares of counts, undefined (absent) on a zero denominator, never 0."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.domain.indicators import (
    INDICATOR_FIELDS,
    INDICATORS,
    indicator_fields,
    indicators,
)
from streams.domain.snapshot import SNAPSHOT_COUNT_FIELDS
from streams.sinks.metrics import AgencyView, MetricsView, create_metrics
from tests.support.metrics import sample_values

# The definitions of issue 5 item 4, written out again: (numerator, denominator terms).
DEFINITIONS = {
    "online_payment": ("payments_online", ("payments",)),
    "online_payment_amount": ("payment_amount_online_vnd", ("payment_amount_vnd",)),
    "digitization": ("digitized", ("received",)),
    "electronic_result": ("electronic_results", ("completed",)),
    "on_time": ("on_time", ("on_time", "late")),
    "online_received": ("received_online", ("received",)),
    "national_portal": ("received_national_portal", ("received_online",)),
    "full_online_procedures": ("full_online_procedures_in_force", ("procedures_in_force",)),
    "full_online_procedures_used": ("full_online_procedures_with_online_dossiers", ("procedures_with_dossiers",)),
}
FIELD_NAMES = {
    "online_payment": "online_payment_rate",
    "online_payment_amount": "online_payment_amount_rate",
    "digitization": "digitization_rate",
    "electronic_result": "electronic_result_rate",
    "on_time": "on_time_rate",
    "online_received": "online_received_rate",
    "national_portal": "national_portal_rate",
    "full_online_procedures": "full_online_procedures_rate",
    "full_online_procedures_used": "full_online_procedures_used_rate",
}


@st.composite
def consistent_counts(draw: st.DrawFn) -> dict[str, int]:
    """Counts as a dossier pipeline produces them: every part at most its whole."""
    small = st.integers(0, 50)
    received = draw(small)
    completed = draw(small)
    on_time, late = draw(small), draw(small)
    payments = draw(small)
    amount = draw(st.integers(0, 10**13))
    counts = {name: 0 for name in SNAPSHOT_COUNT_FIELDS}
    in_force, with_dossiers = draw(small), draw(small)
    counts.update(
        procedures_in_force=in_force, full_online_procedures_in_force=draw(st.integers(0, in_force)),
        procedures_with_dossiers=with_dossiers,
        full_online_procedures_with_online_dossiers=draw(st.integers(0, with_dossiers)),
    )
    received_online = draw(st.integers(0, received))
    counts.update(
        received=received, received_online=received_online, digitized=draw(st.integers(0, received)),
        received_national_portal=draw(st.integers(0, received_online)),
        completed=completed, electronic_results=draw(st.integers(0, completed)), on_time=on_time, late=late,
        payments=payments, payments_online=draw(st.integers(0, payments)),
        payment_amount_vnd=amount, payment_amount_online_vnd=draw(st.integers(0, amount)),
    )
    # A zero denominator is common in real data (an agency with nothing paid yet): force some.
    for name in draw(st.sets(st.sampled_from(["received", "completed", "payments", "payment_amount_vnd",
                                              "procedures_in_force", "procedures_with_dossiers"]))):
        counts[name] = 0
        for part in {"received": ("received_online", "received_national_portal", "digitized"), "completed": ("electronic_results",),
                     "payments": ("payments_online",), "payment_amount_vnd": ("payment_amount_online_vnd",),
                     "procedures_in_force": ("full_online_procedures_in_force",),
                     "procedures_with_dossiers": ("full_online_procedures_with_online_dossiers",)}[name]:
            counts[part] = 0
    return counts


def test_the_indicators_are_the_ones_of_the_issue() -> None:
    assert {i.name: (i.numerator, i.denominator) for i in INDICATORS} == DEFINITIONS
    assert {i.name: i.field for i in INDICATORS} == FIELD_NAMES
    assert INDICATOR_FIELDS == tuple(FIELD_NAMES[i.name] for i in INDICATORS)


@given(consistent_counts())
def test_indicators_match_their_definition_and_are_undefined_on_zero(counts: dict[str, int]) -> None:
    values = indicators(counts)
    fields = indicator_fields(counts)
    for name, (numerator, terms) in DEFINITIONS.items():
        denominator = sum(counts[t] for t in terms)
        if denominator == 0:
            assert name not in values and FIELD_NAMES[name] not in fields  # undefined, never 0
            continue
        exact = Fraction(counts[numerator], denominator)
        assert 0 <= values[name] <= 1
        assert values[name] == float(exact)  # the correctly rounded quotient
        assert abs(Fraction(fields[FIELD_NAMES[name]]) - exact) <= Fraction(1, 2 * 10**6)  # 6 places, rounded
        assert len(fields[FIELD_NAMES[name]].split(".")[1]) == 6


@given(st.dictionaries(st.sampled_from(SNAPSHOT_COUNT_FIELDS), st.integers(0, 10**6)))
def test_indicators_never_fail_on_partial_counts(counts: dict[str, int]) -> None:
    for name, value in indicators(counts).items():
        numerator, terms = DEFINITIONS[name]
        assert sum(counts.get(t, 0) for t in terms) > 0
        assert value == counts.get(numerator, 0) / sum(counts.get(t, 0) for t in terms)


@given(consistent_counts(), consistent_counts())
def test_the_indicator_metrics_are_absent_when_undefined(agency_counts: dict[str, int], block_counts: dict[str, int]) -> None:
    metrics = create_metrics(CollectorRegistry())
    metrics.collector.view = MetricsView(
        agencies=(AgencyView("T01", "province", "Hà Nội", "connected", False, None, None, {"month": agency_counts}),),
        block_counts_by_window={("province", "month"): block_counts},
    )
    agency = sample_values(metrics.registry, "emc_indicator_ratio")
    block = sample_values(metrics.registry, "emc_block_indicator_ratio")
    for name, (numerator, terms) in DEFINITIONS.items():
        for counts, series, labels in (
            (agency_counts, agency, (("agency", "T01"), ("block", "province"), ("indicator", name), ("window", "month"))),
            (block_counts, block, (("block", "province"), ("indicator", name), ("window", "month"))),
        ):
            denominator = sum(counts[t] for t in terms)
            if denominator == 0:
                assert labels not in series
            else:
                assert series[labels] == counts[numerator] / denominator
    # The other windows have no counts at all: nothing is defined there.
    assert {dict(k)["window"] for k in agency} <= {"month"}
