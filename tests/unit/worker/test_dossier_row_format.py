"""Dossier rows of format 1 (before issue 16: the applied events alone) are still read after an
upgrade to format 2 (a version byte, the events and their stored contribution)."""

from __future__ import annotations

import orjson
import pytest

from streams.domain.dossier import periods_at, row_day_counts_of_applied
from streams.reports.explain import dossier_summary
from streams.worker.codec import event_to_wire
from streams.worker.state import DOSSIER_ROW_FORMAT_2, StateApplier, decode_dossier, decode_dossier_row, encode_dossier
from tests.support.oracle import batch_row_counts
from tests.support.simulated import faulty_stream
from tests.support.stores import all_counts, journaled_stores


def _as_format_1(row: bytes) -> bytes:
    """A dossier row as the previous release wrote it."""
    return orjson.dumps([[a.source_partition, a.offset, event_to_wire(a.event)] for a in decode_dossier_row(row)])


@pytest.mark.parametrize("seed", [7, 8])
def test_a_state_written_in_format_1_goes_on_counting_exactly(seed: int) -> None:
    events = faulty_stream(seed, dossiers=120)
    third = len(events) // 3
    stores = journaled_stores()
    StateApplier(stores).apply_batch(events[: 2 * third])
    for key, row in list(stores.dossiers.data.items()):  # type: ignore[attr-defined]
        stores.dossiers.data[key] = _as_format_1(row)  # type: ignore[attr-defined]
    upgraded = StateApplier(stores)  # the new release, restarted on the old state
    upgraded.apply_batch(events[third:])  # a replay of delivered events, then new ones
    assert all_counts(stores) == batch_row_counts(e.event for e in events)


def test_both_formats_decode_to_the_same_events_and_contribution() -> None:
    events = faulty_stream(3, dossiers=40)
    stores = journaled_stores()
    StateApplier(stores).apply_batch(events)
    rows = list(stores.dossiers.data.values())  # type: ignore[attr-defined]
    assert rows and all(row[:1] == DOSSIER_ROW_FORMAT_2 for row in rows)
    for row in rows:
        new, old = decode_dossier(row), decode_dossier(_as_format_1(row))
        assert old.applied == new.applied
        assert old.contribution_by_day is None  # computed when first needed
        assert old.contribution() == new.contribution() == row_day_counts_of_applied(a.event for a in new.applied)
        assert encode_dossier(old) == row


def test_the_reconcile_summary_reads_both_formats() -> None:
    events = faulty_stream(4, dossiers=30)
    stores = journaled_stores()
    StateApplier(stores).apply_batch(events)
    periods = {p for item in events for p in periods_at(item.event.occurred_at_us)}
    summaries = 0
    for key, row in stores.dossiers.data.items():  # type: ignore[attr-defined]
        for period in periods:
            summary = dossier_summary(key, row, period)
            assert summary == dossier_summary(key, _as_format_1(row), period)
            summaries += summary is not None
    assert summaries > 30
