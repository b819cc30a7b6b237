"""`emc explain` (pure part): dossier rows as the worker writes them, read back from a changelog."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from streams.domain.dossier import COUNT_FIELDS, MODES
from streams.reports.explain import CATEGORIES, explain, explanation_json, render_explanation_text, rows_from_records
from streams.simulation.simulator import SimulationConfig
from streams.worker.state import StateApplier, StateStores
from tests.support.oracle import batch_contract_counts as batch_counts
from tests.support.simulated import sourced_events
from tests.support.stores import RecordingStore

AGENCIES = ("T01", "T35", "BCT")


@pytest.fixture(scope="module")
def applied() -> tuple[RecordingStore, list]:
    config = SimulationConfig(
        agencies=AGENCIES, dossiers=300, seed=7,
        start=datetime(2025, 3, 20, tzinfo=timezone.utc), end=datetime(2025, 5, 10, tzinfo=timezone.utc),
        duplicate_share=0.15, correction_share=0.15, void_share=0.05, late_share=0.2, bad_share=0.0,
    )
    events = sourced_events(config)
    dossiers = RecordingStore()
    applier = StateApplier(StateStores(RecordingStore(), dossiers, RecordingStore(), RecordingStore(), RecordingStore()))
    for start in range(0, len(events), 50):
        applier.apply_batch(events[start:start + 50])
    return dossiers, [e.event for e in events]


@pytest.mark.parametrize("agency", AGENCIES)
@pytest.mark.parametrize("period", ["2025-04", "2025-Q2", "2025", "2025-04-15"])
def test_counts_from_the_changelog_equal_the_batch_computation(applied, agency: str, period: str) -> None:
    dossiers, events = applied
    rows = rows_from_records(dossiers.changelog_records(), agency)
    expected = batch_counts(events).get((agency, period), {})
    result = explain(agency, period, rows, sample=2, redis_counts=dict(expected))
    assert {k: v for k, v in result.counts.items() if v} == expected
    assert result.matches is True
    for mode in MODES:
        assert result.totals[mode] == expected.get(mode, 0)
    assert result.totals["rejected"] == expected.get("rejected", 0)
    assert result.totals["withdrawn"] == expected.get("withdrawn", 0)
    for category in CATEGORIES:
        sample = result.samples[category]
        assert len(sample) == min(2, result.totals[category])
        for dossier in sample:
            if category in MODES:
                assert dossier.mode == category
            live = [e for e in dossier.events if e.live]
            dead = [e for e in dossier.events if not e.live]
            assert all(e.superseded_by for e in dead) and not any(e.roles for e in dead)
            if category in MODES or category == "rejected":
                assert sum("resolution" in e.roles for e in live) == 1
    different = dict(expected, resolved=expected.get("resolved", 0) + 1)
    assert explain(agency, period, rows, redis_counts=different).matches is False
    doc = explanation_json(result)
    assert set(doc["counts"]) == set(COUNT_FIELDS)
    assert render_explanation_text(result, agency).count("dossier") >= 1


def test_superseded_events_are_shown_dead_with_what_superseded_them(applied) -> None:
    dossiers, _ = applied
    found = 0
    for agency in AGENCIES:
        for sample in explain(agency, "2025", rows_from_records(dossiers.changelog_records(), agency), sample=1000).samples.values():
            for dossier in sample:
                for e in dossier.events:
                    if not e.live:
                        found += 1
                        names = {o.event.event_id: o.event for o in dossier.events}
                        assert all(names[s].supersedes == e.event.event_id for s in e.superseded_by)
    assert found > 0  # the simulated corrections are visible


def test_last_value_per_key_and_only_the_agencys_keys() -> None:
    row1, row2 = b'[[0, 1, ["a"]]]', b'[[0, 2, ["b"]]]'
    records = [(b"T1\x1fd1", row1), (b"T10\x1fd1", row2), (b"T1\x1fd1", row2), (b"T1\x1fd2", row1), (b"T1\x1fd2", None), (None, row1)]
    assert rows_from_records(records, "T1") == {"d1": row2}
    assert rows_from_records(records, "T10") == {"d1": row2}
