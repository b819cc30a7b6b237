"""The state rules under crashes, on dict stores that lose what a real crash loses.

Crash model (Faust + RocksDB + changelog, no transactions): writes are durable up to the
last commit (Faust flushes the producer before committing offsets); after it, each key may
come back as any of the versions written since, or none. Processing then resumes at
the committed batch. The final counts must equal the batch computation, however often
this happens, with duplicates, corrections, voids and late events in the stream.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.events import parse_event
from streams.worker.codec import EventView, SourcedEvent, event_to_wire
from streams.worker.state import StateApplier, StateStores, read_counter_row
from tests.support.oracle import batch_row_counts, nonzero
from tests.support.simulated import faulty_stream
from tests.support.stores import JournaledStore, all_counts, journaled_stores


def _each(stores: StateStores) -> tuple[JournaledStore, ...]:
    return (stores.event_index, stores.dossiers, stores.counters, stores.agencies,  # type: ignore[return-value]
            stores.procedures)


def _run_with_crashes(events: list[SourcedEvent], batch_size: int, crash_rng: random.Random, crashes: int) -> StateStores:
    stores = journaled_stores()
    batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    crash_at = set(crash_rng.sample(range(len(batches)), min(crashes, len(batches))))
    committed = 0
    position = 0
    applier = StateApplier(stores)
    while position < len(batches):
        applier.apply_batch(batches[position])
        position += 1
        if crash_rng.random() < 0.3:
            for store in _each(stores):
                store.commit()
            committed = position
        if position in crash_at:
            crash_at.discard(position)
            for store in _each(stores):
                store.crash(crash_rng)
            applier = StateApplier(stores)  # a new process
            position = committed
    return stores


def test_without_crashes_the_state_equals_the_batch_computation() -> None:
    events = faulty_stream(seed=7)
    stores = journaled_stores()
    StateApplier(stores).apply_batch(events)
    assert all_counts(stores) == batch_row_counts(e.event for e in events)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), batch_size=st.sampled_from([1, 7, 50, 400]), crashes=st.integers(1, 6),
       as_views=st.booleans())
def test_crashes_and_replays_never_change_a_count(seed: int, batch_size: int, crashes: int, as_views: bool) -> None:
    events = faulty_stream(seed, dossiers=80)
    if as_views:  # as the state stage has them from `decode_batch`
        events = [SourcedEvent(s.source_partition, s.offset, EventView._make(event_to_wire(s.event))) for s in events]
    stores = _run_with_crashes(events, batch_size, random.Random(seed), crashes)
    assert all_counts(stores) == batch_row_counts(e.event for e in events)


def test_an_ingest_replay_of_delivered_batches_is_recognised() -> None:
    """The ingest stage may deliver a source range twice (crash before its commit)."""
    events = faulty_stream(seed=11)
    stores = journaled_stores()
    applier = StateApplier(stores)
    half = len(events) // 2
    applier.apply_batch(events[:half])
    applier.apply_batch(events[half // 2 :])  # re-delivered from an older commit, then onwards
    assert all_counts(stores) == batch_row_counts(e.event for e in events)


def test_a_duplicate_event_id_for_another_dossier_changes_nothing() -> None:
    received = (
        b'{"schema":"emc.dossier-event.v1","event_id":"E1","agency_code":"T01","dossier_id":"%s",'
        b'"type":"received","channel":"online","procedure_code":"1.1","occurred_at":"2025-01-02T03:00:00Z"}'
    )
    first = SourcedEvent(0, 0, parse_event(received % b"A"))
    again = SourcedEvent(0, 1, parse_event(received % b"B"))
    stores = journaled_stores()
    outcome = StateApplier(stores).apply_batch([first, again])
    assert outcome.results[("received", "applied")] == 1
    assert outcome.results[("received", "duplicate")] == 1
    assert read_counter_row(stores.counters, "T01", "2025-01").counts == {"received": 1, "received_online": 1}


@pytest.mark.parametrize("order", ["void_first", "void_last"])
def test_void_in_any_order_removes_the_dossier_everywhere(order: str) -> None:
    base = b'{"schema":"emc.dossier-event.v1","agency_code":"T01","dossier_id":"D","occurred_at":"2025-01-02T03:00:00Z",'
    received = base + b'"event_id":"r","type":"received","channel":"online","procedure_code":"1.1"}'
    returned = base + b'"event_id":"x","type":"result_returned","delivery":"online"}'
    void = base + b'"event_id":"v","type":"voided"}'
    raw = [void, received, returned] if order == "void_first" else [received, returned, void]
    stores = journaled_stores()
    StateApplier(stores).apply_batch(SourcedEvent(0, i, parse_event(r)) for i, r in enumerate(raw))
    assert all_counts(stores) == {}


class LocalAndChangelog:
    """A store as one worker has it: its local RocksDB, and the changelog a new owner of the
    partition restores from, which gets a message's rows only when they are sent."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.changelog: dict[str, bytes] = {}
        self.unsent: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.unsent[key] = value

    def keys(self) -> list[str]:
        return list(self.data)

    def send(self) -> None:
        self.changelog.update(self.unsent)
        self.unsent.clear()

    def restored(self) -> LocalAndChangelog:
        store = LocalAndChangelog()
        store.data = dict(self.changelog)
        store.changelog = dict(self.changelog)
        return store


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_rows_a_crash_kept_only_in_the_local_store_reach_the_changelog_on_the_replay(seed: int) -> None:
    """Killed after writing a message's rows locally but before sending them: the same worker
    restarts on its local store and replays the message. Later the partition moves to a worker
    that restores from the changelog alone; its counts must still be exact."""
    events = faulty_stream(seed, dossiers=120)
    batches = [events[i : i + 40] for i in range(0, len(events), 40)]
    stores = StateStores(LocalAndChangelog(), LocalAndChangelog(), LocalAndChangelog(), LocalAndChangelog(),
                         LocalAndChangelog())
    each = (stores.event_index, stores.dossiers, stores.counters, stores.agencies, stores.procedures)
    rng = random.Random(seed)
    for batch in batches:
        StateApplier(stores).apply_batch(batch)
        if rng.random() < 0.4:  # killed before the changelog had the rows: the message comes again
            for store in each:
                store.unsent.clear()  # type: ignore[attr-defined]
            StateApplier(stores).apply_batch(batch)
        for store in each:
            store.send()  # type: ignore[attr-defined]
    moved = StateStores(*(store.restored() for store in each))  # type: ignore[attr-defined]
    assert all_counts(moved) == batch_row_counts(e.event for e in events)


def _two_source_partitions(events: list[SourcedEvent]) -> list[list[SourcedEvent]]:
    """The events as two source partitions (by dossier), each numbered from offset 0 in order."""
    partitions: list[list[SourcedEvent]] = [[], []]
    for s in events:
        p = sum((s.event.dossier_id or s.event.agency_code).encode()) % 2
        partitions[p].append(SourcedEvent(p, len(partitions[p]), s.event))
    return partitions


def _rows(stores: StateStores) -> dict[tuple[str, str], tuple[dict, dict, dict]]:
    """Every counter and procedure row whole: nonzero counts, nonzero event counts, offsets."""
    return {(name, key): (nonzero(row.counts), nonzero(row.events), row.offsets)
            for name, store in (("counters", stores.counters), ("procedures", stores.procedures))
            for key in store.keys()  # type: ignore[attr-defined]
            for row in [read_counter_row(store, *key.split("\x1f", 1))]}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), crashes=st.integers(0, 5), redeliveries=st.integers(0, 3))
def test_rows_folded_per_batch_equal_rows_folded_one_event_at_a_time(seed: int, crashes: int, redeliveries: int) -> None:
    """The state stage folds a batch's changes into each row at once (`BatchFold`); with any batch
    bounds, crashes, and re-deliveries of ranges already applied (whose rows a replay finds
    part-way), every row, event counts and offsets included, is the one that applying the
    events one at a time gives."""
    now_us = 1_900_000_000_000_000
    rng = random.Random(seed)
    partitions = _two_source_partitions(faulty_stream(seed, dossiers=60))
    reference = journaled_stores()
    applier = StateApplier(reference)
    for s in sorted((s for p in partitions for s in p), key=lambda s: (s.offset, s.source_partition)):
        applier.apply_batch([s], now_us=now_us)

    batches = []  # (committable) batch messages: each partition cut at random bounds, interleaved
    cuts = {p: 0 for p in range(2)}
    while any(cuts[p] < len(partitions[p]) for p in cuts):
        p = rng.choice([p for p in cuts if cuts[p] < len(partitions[p])])
        size = rng.choice([1, 3, 17, 60])
        start = cuts[p]
        if redeliveries and start and rng.random() < 0.2:  # an ingest replay from an older commit
            redeliveries -= 1
            start = rng.randrange(0, start)
        batches.append(partitions[p][start : cuts[p] + size])
        cuts[p] += size
    stores = journaled_stores()
    applier, committed, position = StateApplier(stores), 0, 0
    crash_at = set(rng.sample(range(len(batches)), min(crashes, len(batches))))
    while position < len(batches):
        applier.apply_batch(batches[position], now_us=now_us)
        position += 1
        if rng.random() < 0.3:
            for store in _each(stores):
                store.commit()
            committed = position
        if position in crash_at:
            crash_at.discard(position)
            for store in _each(stores):
                store.crash(rng)
            applier, position = StateApplier(stores), committed
    assert _rows(stores) == _rows(reference)
