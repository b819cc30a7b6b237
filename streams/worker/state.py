"""Applying validated events to keyed state, exactly, without Kafka transactions.

The rules (see the README, "Exact without Kafka transactions"):

- All rows an event touches (event index, dossier, counters, agency) belong to the agency,
  and all of an agency's events arrive through one state partition in source-offset order.
- The event index remembers where each `event_id` was first applied (source partition and
  offset). The same event_id at another position is a duplicate and changes nothing.
- The dossier row keeps its applied events in application order, each with its source
  position. A replay of an event the row already holds re-derives that event's counter
  deltas from the prefix of the list ending at it.
- Each counter row stores, beside its counts, the highest source offset folded into it per
  source partition. A delta is added to a row only when the row's offset for that source
  partition is below the event's offset; otherwise the row already has it.
- Every row is written whole, so each row restored from its changelog is self-consistent
  whatever else the crash lost; that is why the checks above are per row.
- A replayed event writes its rows again, unchanged: a worker killed after writing a batch to
  its local store but before the changelog had it restarts ahead of its changelog, and the
  replay is what puts those rows into the changelog that a later owner restores from.

This module knows nothing of Faust: it works on any `KeyValueStore`, which the stream
layer backs with Faust tables and the unit tests back with dicts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import orjson

from streams.domain.catalogue import Catalogue
from streams.domain.dossier import (
    DayCounts,
    PeriodCounts,
    counts_by_period,
    counts_delta,
    is_count_neutral,
    is_procedure_field,
    local_day_number,
    periods_at,
    periods_of_day_number,
    row_day_counts_one_pass,
)
from streams.domain.events import DossierEvent
from streams.domain.finality import kind_increments, period_end_us
from streams.worker.codec import WIRE_EVENT_ID, SourcedEvent, event_from_wire, event_to_wire, event_view_from_wire, wire_of

SEP = "\x1f"  # between the parts of a row key (agency, then event id, dossier id or period)
_NO_CHANGES: dict[str, int] = {}  # a duplicate's counts: none (read only)


class KeyValueStore(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The rows of these keys, in order (None: no row): one store call for a batch."""
        ...

    def set(self, key: str, value: bytes) -> None: ...


@dataclass(slots=True)
class StateStores:
    """The five keyed stores of one worker.

    `procedures` holds, per (agency, period) like `counters`, the per-procedure counts of
    indicator 2 (PROCEDURE_*_PREFIX + code -> n, a procedure removed when its count falls to
    0, so the keys are exactly the procedures that have dossiers), with the same offset rule.
    They are rows of their own so that the hot counter rows stay small: a procedure row is
    written only by the events that change a dossier's receipt.
    """

    event_index: KeyValueStore
    dossiers: KeyValueStore
    counters: KeyValueStore
    agencies: KeyValueStore
    procedures: KeyValueStore


@dataclass(slots=True)
class BatchOutcome:
    """What applying a batch did: for metrics and for the snapshot publisher."""

    results: Counter = field(default_factory=Counter)  # (type, result) -> n
    dirty_counters: set[tuple[str, str]] = field(default_factory=set)  # (agency, period)


def row_key(agency: str, name: str) -> str:
    """The key of an agency's row in a table: its event id, dossier id or period after the agency."""
    return f"{agency}{SEP}{name}"


def counter_key(agency: str, period: str) -> str:
    return row_key(agency, period)


def split_counter_key(key: str) -> tuple[str, str]:
    agency, period = key.split(SEP, 1)
    return agency, period


@dataclass(slots=True)
class CounterRow:
    offsets: dict[str, int]  # source partition (as str, JSON keys) -> highest folded offset
    counts: dict[str, int]  # contract section 3
    events: dict[str, int] = field(default_factory=dict)  # streams/domain/finality.py EVENT_COUNT_FIELDS

    @staticmethod
    def decode(raw: bytes | None) -> CounterRow:
        if raw is None:
            return CounterRow({}, {})
        data = orjson.loads(raw)
        return CounterRow(data["o"], data["c"], data.get("e", {}))  # rows written before issue 15 have no "e"

    def encode(self) -> bytes:
        return orjson.dumps({"o": self.offsets, "c": self.counts, "e": self.events})

    def snapshot_fields(self) -> dict[str, int]:
        """The counts and the event counts: what the Redis snapshot of the row is written from."""
        return {**self.counts, **self.events}


@dataclass(slots=True)
class AgencyRow:
    last_event_us: int | None = None
    last_heartbeat_us: int | None = None

    @staticmethod
    def decode(raw: bytes | None) -> AgencyRow:
        if raw is None:
            return AgencyRow()
        data = orjson.loads(raw)
        return AgencyRow(data.get("e"), data.get("h"))

    def encode(self) -> bytes:
        return orjson.dumps({"e": self.last_event_us, "h": self.last_heartbeat_us})


@dataclass(slots=True)
class AppliedEvent:
    """One event of a dossier row, with the source position at which it was applied."""

    source_partition: int
    offset: int
    event: DossierEvent


# The first byte of a dossier row of format 2 (rows of format 1 are a JSON array: `[`).
DOSSIER_ROW_FORMAT_2 = b"\x02"


@dataclass(slots=True)
class DossierRow:
    """A dossier's applied events and what they contribute to its agency's rows.

    The contribution is kept in the row (format 2) so that applying an event classifies the
    dossier once, after it, and takes the difference with the stored contribution instead of
    classifying the state before it again. It is always that of exactly the row's events
    (rows are written whole), so a row that a crash brings back is self-consistent.

    The events stay in the form the row stores them (`entries`, as decoded), read through
    `EventView`s: a new event's entry is appended, and encoding the row writes the others back
    as they were read, without building and re-wiring a DossierEvent for each.
    """

    entries: list  # [source_partition, offset, event in wire form] per applied event, in order
    contribution_by_day: DayCounts | None  # None: not known yet (a row of format 1)
    views: list[DossierEvent] | None = None  # the entries' events as views, built when first needed

    def events(self) -> list[DossierEvent]:
        """The applied events, as read-only views for `streams.domain.dossier`'s rules."""
        if self.views is None:
            self.views = [event_view_from_wire(wire) for _, _, wire in self.entries]
        return self.views

    def contribution(self) -> DayCounts:
        if self.contribution_by_day is None:
            self.contribution_by_day = row_day_counts_one_pass(self.events())
        return self.contribution_by_day

    def append(self, item: SourcedEvent) -> None:
        events = self.events()
        self.entries.append((item.source_partition, item.offset, wire_of(item.event)))
        events.append(item.event)

    @property
    def applied(self) -> list[AppliedEvent]:
        """The applied events as DossierEvents with their source positions."""
        return [AppliedEvent(sp, off, event_from_wire(wire)) for sp, off, wire in self.entries]


def decode_dossier(raw: bytes | None) -> DossierRow:
    """A dossier row of either format: format 2 is the version byte then
    `[[[source_partition, offset, event in wire form], ...], [[local day, field, n], ...]]`;
    format 1 (before issue 16) is the list of applied events alone."""
    if raw is None:
        return DossierRow([], {}, [])
    if raw[:1] == DOSSIER_ROW_FORMAT_2:
        entries, contribution = orjson.loads(raw[1:])
        return DossierRow(entries, {(day, name): n for day, name, n in contribution})
    return DossierRow(orjson.loads(raw), None)


def dossier_row_wires(raw: bytes) -> list[list]:
    """The `[source_partition, offset, event in wire form]` entries of a dossier row of either
    format, without building the events (for a reader that filters before it decodes)."""
    return orjson.loads(raw[1:])[0] if raw[:1] == DOSSIER_ROW_FORMAT_2 else orjson.loads(raw)


def dossier_row_parts(raw: bytes) -> tuple[list[list], list[list] | None]:
    """The entries of a dossier row as `dossier_row_wires` gives them, and its stored
    contribution `[[local day, field, n], ...]` (None in a row of format 1), undecoded."""
    if raw[:1] == DOSSIER_ROW_FORMAT_2:
        applied, contribution = orjson.loads(raw[1:])
        return applied, contribution
    return orjson.loads(raw), None


def decode_dossier_row(raw: bytes | None) -> list[AppliedEvent]:
    """The applied events of a dossier row of either format."""
    return decode_dossier(raw).applied


def encode_dossier_row(applied: list[AppliedEvent]) -> bytes:
    """The dossier row of these applied events as the state stage writes it (format 2)."""
    return encode_dossier(DossierRow([(a.source_partition, a.offset, event_to_wire(a.event)) for a in applied], None))


def encode_dossier(row: DossierRow) -> bytes:
    """A dossier row in format 2."""
    return DOSSIER_ROW_FORMAT_2 + orjson.dumps([
        row.entries,
        [[day, name, n] for (day, name), n in row.contribution().items()],
    ])


# The event counts of a duplicate (kind_increments), and the kinds of the applied events by
# (type, whether it corrects an event): one tuple per combination instead of one per event.
_DUPLICATE_KINDS = kind_increments(duplicate=True, event_type="", supersedes=None)


@lru_cache(maxsize=256)
def _applied_kinds(event_type: str, corrects: bool) -> tuple[str, ...]:
    return kind_increments(duplicate=False, event_type=event_type, supersedes="corrected" if corrects else None)


class BatchFold:
    """What the events of one batch message from one source partition change in one agency's
    counter and procedure rows, gathered per local day, to be folded into each row at once.

    An event whose count changes all fall on one local day (most of them) reaches the four
    periods of that day; its changes are added to the day's sums and its event counts to the
    day's marks, without spreading it over its periods. An event whose changes span days
    (a correction that moves a date, a payment that changes a resolved dossier's mode) is
    spread at once, exactly, since its changes can cancel out in a common period (then it does
    not reach that period's row). A duplicate reaches the periods of its own `occurred_at`.
    The events themselves are kept too, for a row that a replay finds part-way (`_fold_counts`).
    """

    __slots__ = ("source_partition", "partition_key", "first_offset", "records", "sums", "counter_days",
                 "counter_periods", "procedure_days", "procedure_periods", "_spread", "_counter_marks",
                 "_procedure_marks", "_by_period")

    def __init__(self, source_partition: int) -> None:
        self.source_partition = source_partition
        self.partition_key = str(source_partition)  # CounterRow.offsets' key
        self.first_offset = -1
        # (offset, its count changes by day or None for a duplicate, the event), in offset order.
        self.records: list[tuple[int, DayCounts | None, DossierEvent]] = []
        self.sums: DayCounts = {}  # the count changes of all of them, by day
        # Local day (or period) -> [offset of the last event reaching it, {event count: n},
        # applied events among them (for events_after_close)]: counter rows.
        self.counter_days: dict[int, list] = {}
        self.counter_periods: dict[str, list] = {}
        # Local day (or period) -> offset of the last event reaching it: procedure rows.
        self.procedure_days: dict[int, int] = {}
        self.procedure_periods: dict[str, int] = {}
        self._spread: tuple[PeriodCounts, PeriodCounts] | None = None
        self._counter_marks: dict[str, list] | None = None
        self._procedure_marks: dict[str, int] | None = None
        self._by_period: dict[int, tuple[PeriodCounts, PeriodCounts]] = {}

    def add_duplicate(self, item: SourcedEvent) -> None:
        offset = item.offset
        if not self.records:
            self.first_offset = offset
        self.records.append((offset, None, item.event))
        _mark(self.counter_days, local_day_number(item.event.occurred_at_us), offset, _DUPLICATE_KINDS, 0)

    def add_applied(self, item: SourcedEvent, delta: DayCounts) -> None:
        """An applied event and its count changes by day (not empty)."""
        offset = item.offset
        if not self.records:
            self.first_offset = offset
        event = item.event
        self.records.append((offset, delta, event))
        sums = self.sums
        day = None
        one_day = True
        changes_counts = changes_procedures = False
        for key, amount in delta.items():
            sums[key] = sums.get(key, 0) + amount
            if day is None:
                day = key[0]
            elif key[0] != day:
                one_day = False
            if is_procedure_field(key[1]):
                changes_procedures = True
            else:
                changes_counts = True
        kinds = _applied_kinds(event.type, bool(event.supersedes))
        if one_day:
            if changes_counts:
                _mark(self.counter_days, day, offset, kinds, 1)
            if changes_procedures:
                self.procedure_days[day] = offset  # type: ignore[index]
        else:
            counts, procedures = self.by_period(offset, delta)
            for period in counts:
                _mark(self.counter_periods, period, offset, kinds, 1)
            for period in procedures:
                self.procedure_periods[period] = offset

    def by_period(self, offset: int, delta: DayCounts) -> tuple[PeriodCounts, PeriodCounts]:
        """One event's count changes by period (`counts_by_period`), computed once."""
        spread = self._by_period.get(offset)
        if spread is None:
            spread = self._by_period[offset] = counts_by_period(delta)
        return spread

    def spread(self) -> tuple[PeriodCounts, PeriodCounts]:
        """The count changes of all the events, by period: counts and per-procedure counts."""
        if self._spread is None:
            self._spread = counts_by_period(self.sums)
        return self._spread

    def counter_marks(self) -> dict[str, list]:
        """Period -> [offset of the last event reaching its counter row, {event count: n}, applied events]."""
        if self._counter_marks is None:
            marks: dict[str, list] = {}
            for day, (last, kinds, applied) in self.counter_days.items():
                for period in periods_of_day_number(day):
                    _merge_mark(marks, period, last, kinds, applied)
            for period, (last, kinds, applied) in self.counter_periods.items():
                _merge_mark(marks, period, last, kinds, applied)
            self._counter_marks = marks
        return self._counter_marks

    def procedure_marks(self) -> dict[str, int]:
        """Period -> offset of the last event reaching its procedure row."""
        if self._procedure_marks is None:
            marks: dict[str, int] = dict(self.procedure_periods)
            for day, last in self.procedure_days.items():
                for period in periods_of_day_number(day):
                    if marks.get(period, -1) < last:
                        marks[period] = last
            self._procedure_marks = marks
        return self._procedure_marks


def _mark(marks: dict, where: int | str, offset: int, kinds: tuple[str, ...], applied: int) -> None:
    mark = marks.get(where)
    if mark is None:
        marks[where] = [offset, dict.fromkeys(kinds, 1), applied]
        return
    mark[0] = offset  # events come in offset order
    counted = mark[1]
    for name in kinds:
        counted[name] = counted.get(name, 0) + 1
    mark[2] += applied


def _merge_mark(marks: dict[str, list], period: str, last: int, kinds: dict[str, int], applied: int) -> None:
    mark = marks.get(period)
    if mark is None:
        marks[period] = [last, dict(kinds), applied]
        return
    if mark[0] < last:
        mark[0] = last
    counted = mark[1]
    for name, n in kinds.items():
        counted[name] = counted.get(name, 0) + n
    mark[2] += applied


def _add_event_counts(row: CounterRow, kinds: Iterable[tuple[str, int]], applied: int, period: str,
                      applied_at_us: int) -> None:
    events = row.events
    for name, n in kinds:
        events[name] = events.get(name, 0) + n
    if applied and applied_at_us >= period_end_us(period):  # the rule of finality.event_increments
        events["events_after_close"] = events.get("events_after_close", 0) + applied


def _fold_counts(row: CounterRow, fold: BatchFold, period: str, applied_at_us: int) -> None:
    """Fold the events of `fold` that reach `period` into its counter row, by the offset rule."""
    offsets = row.offsets
    partition_key = fold.partition_key
    stored = offsets.get(partition_key, -1)
    last, kinds, applied = fold.counter_marks()[period]
    if stored >= last:
        return  # already folded in before a crash
    counts = row.counts
    if stored < fold.first_offset:  # every event of the batch is new to the row
        for name, amount in fold.spread()[0].get(period, _NO_CHANGES).items():
            counts[name] = counts.get(name, 0) + amount
        _add_event_counts(row, kinds.items(), applied, period, applied_at_us)
        offsets[partition_key] = last
        return
    # A replay found the row part-way through the batch: the events after it, one by one.
    for offset, delta, event in fold.records:
        if offset <= stored:
            continue
        if delta is None:
            if period not in periods_at(event.occurred_at_us):
                continue
            _add_event_counts(row, ((name, 1) for name in _DUPLICATE_KINDS), 0, period, applied_at_us)
        else:
            changes = fold.by_period(offset, delta)[0].get(period)
            if not changes:
                continue
            for name, amount in changes.items():
                counts[name] = counts.get(name, 0) + amount
            kinds_of_event = _applied_kinds(event.type, bool(event.supersedes))
            _add_event_counts(row, ((name, 1) for name in kinds_of_event), 1, period, applied_at_us)
        offsets[partition_key] = offset


def _fold_procedure_counts(row: CounterRow, fold: BatchFold, period: str, applied_at_us: int) -> None:
    """Fold per-procedure changes into a procedure row by the same rule as `_fold_counts`; a
    procedure whose count falls to 0 leaves the row."""
    offsets = row.offsets
    partition_key = fold.partition_key
    stored = offsets.get(partition_key, -1)
    last = fold.procedure_marks()[period]
    if stored >= last:
        return
    if stored < fold.first_offset:
        _add_procedures(row.counts, fold.spread()[1].get(period, _NO_CHANGES))
        offsets[partition_key] = last
        return
    for offset, delta, _ in fold.records:
        if offset <= stored or delta is None:
            continue
        changes = fold.by_period(offset, delta)[1].get(period)
        if changes:
            _add_procedures(row.counts, changes)
            offsets[partition_key] = offset


def _add_procedures(counts: dict[str, int], changes: dict[str, int]) -> None:
    for name, amount in changes.items():
        total = counts.get(name, 0) + amount
        if total:
            counts[name] = total
        else:  # no dossier left: the procedure leaves the set
            counts.pop(name, None)


class StateApplier:
    """Applies batches of sourced events to the stores; one instance per worker."""

    def __init__(self, stores: StateStores) -> None:
        self._stores = stores

    def apply_batch(self, batch: Iterable[SourcedEvent], now_us: int | None = None) -> BatchOutcome:
        """Apply a batch; `now_us` (default the clock) is when it is applied, for
        `events_after_close`."""
        applied_at_us = time.time_ns() // 1000 if now_us is None else now_us
        outcome = BatchOutcome()
        # Rows read or written in this batch, written back once at the end. Writing at the
        # end is safe: each row's stored offsets say exactly which events it contains.
        index_rows: dict[str, bytes] = {}
        dossier_rows: dict[str, DossierRow] = {}
        agency_rows: dict[str, AgencyRow] = {}
        dirty_dossiers: set[str] = set()
        # What the batch's events change in each agency's counter and procedure rows, gathered
        # per local day and folded into the rows once, at the end (`_fold_batch`).
        folds: dict[tuple[str, int], BatchFold] = {}

        def folds_of(agency: str, source_partition: int) -> BatchFold:
            fold = folds.get((agency, source_partition))
            if fold is None:
                fold = folds[(agency, source_partition)] = BatchFold(source_partition)
            return fold

        # The event-index and dossier rows of the whole batch, read in one call per table (the
        # stores do not change before the writes at the end; the dicts above have the newer rows).
        batch = list(batch)
        row_keys = [None if item.event.type == "heartbeat" else
                    (row_key(item.event.agency_code, item.event.event_id),
                     row_key(item.event.agency_code, item.event.dossier_id)) for item in batch]
        index_keys = [keys[0] for keys in row_keys if keys is not None]
        dossier_keys = list(dict.fromkeys(keys[1] for keys in row_keys if keys is not None))
        stored_index = dict(zip(index_keys, self._stores.event_index.get_many(index_keys)))
        stored_dossiers = dict(zip(dossier_keys, self._stores.dossiers.get_many(dossier_keys)))

        for item, keys in zip(batch, row_keys):
            event = item.event
            agency = event.agency_code
            self._note_agency_activity(agency_rows, event)
            if keys is None:
                # A heartbeat changes no count; taking the max time is idempotent, so a
                # duplicate or replayed heartbeat needs no bookkeeping.
                outcome.results[(event.type, "applied")] += 1
                continue

            index_key, dossier_key = keys
            position = orjson.dumps([item.source_partition, item.offset])
            first_position = index_rows.get(index_key)
            if first_position is None:
                first_position = stored_index[index_key]
            if first_position is not None and first_position != position:
                outcome.results[(event.type, "duplicate")] += 1
                folds_of(agency, item.source_partition).add_duplicate(item)
                continue

            dossier = dossier_rows.get(dossier_key)
            if dossier is None:
                dossier = dossier_rows[dossier_key] = decode_dossier(stored_dossiers[dossier_key])

            delta = self._delta_for(dossier, item)
            if delta is None:
                outcome.results[(event.type, "duplicate")] += 1
                folds_of(agency, item.source_partition).add_duplicate(item)
                continue
            # Written again on a replay too: a crash may have kept the row in the local store
            # but not in the changelog, which is what a new owner of the partition restores.
            index_rows[index_key] = position
            dirty_dossiers.add(dossier_key)
            outcome.results[(event.type, "applied")] += 1
            if delta:  # an applied event that changes no count touches no row
                folds_of(agency, item.source_partition).add_applied(item, delta)

        if folds:  # first: its rows are read in one multi-get while no row of the batch is written yet
            self._fold_batch(folds, applied_at_us, outcome)
        for key, value in index_rows.items():
            self._stores.event_index.set(key, value)
        for key in dirty_dossiers:
            self._stores.dossiers.set(key, encode_dossier(dossier_rows[key]))
        for agency, row in agency_rows.items():
            self._stores.agencies.set(agency, row.encode())
        return outcome

    @staticmethod
    def _delta_for(dossier: DossierRow, item: SourcedEvent) -> DayCounts | None:
        """The counter deltas, by day, of applying `item` to a dossier; None for a duplicate.

        Mutates `dossier` when the event is new to it.
        """
        event_id = item.event.event_id
        for position, (source_partition, offset, wire) in enumerate(dossier.entries):
            if wire[WIRE_EVENT_ID] != event_id:
                continue
            if source_partition != item.source_partition or offset != item.offset:
                return None  # applied before at another position: a duplicate
            # A replay of an event the dossier row already holds: its deltas are those of
            # the prefix ending at it. Counter rows that already folded it in skip them.
            events = dossier.events()
            before = row_day_counts_one_pass(events[:position])
            after = row_day_counts_one_pass(events[: position + 1])
            return counts_delta(before, after)
        if is_count_neutral(item.event):
            dossier.append(item)  # the contribution stays that of the events before it
            return {}
        before = dossier.contribution()
        dossier.append(item)
        after = dossier.contribution_by_day = row_day_counts_one_pass(dossier.views)  # type: ignore[arg-type]
        return counts_delta(before, after)

    def _fold_batch(self, folds: dict[tuple[str, int], BatchFold], applied_at_us: int, outcome: BatchOutcome) -> None:
        """Fold what the batch changes into the counter and procedure rows, each row read once
        (one multi-get per table) and written once.

        The rule is that of one event at a time: a row takes the events that reach it whose
        source offset is above the row's offset for their source partition, and its offset
        becomes that of the last one. A row whose offset is below every event of the batch from
        that partition (no replay) takes them all: their sums, spread over the periods once.
        A row that a replay finds at or past the batch's first offset takes them one by one."""
        counter_keys: dict[str, list[tuple[BatchFold, str]]] = {}
        procedure_keys: dict[str, list[tuple[BatchFold, str]]] = {}
        for (agency, _), fold in folds.items():
            prefix = agency + SEP  # counter_key
            for period in fold.counter_marks():
                counter_keys.setdefault(prefix + period, []).append((fold, period))
            for period in fold.procedure_marks():
                procedure_keys.setdefault(prefix + period, []).append((fold, period))
        tables = [(store, keys, fold_into, store.get_many(list(keys))) for store, keys, fold_into in (
            (self._stores.counters, counter_keys, _fold_counts),
            (self._stores.procedures, procedure_keys, _fold_procedure_counts))]
        for store, keys, fold_into, stored in tables:
            for key, raw in zip(keys, stored):
                row = CounterRow.decode(raw)
                for fold, period in keys[key]:
                    fold_into(row, fold, period, applied_at_us)
                # Written even when the row had every event already (a replay): a crash may
                # have kept it in the local store but not in the changelog.
                store.set(key, row.encode())
                outcome.dirty_counters.add(split_counter_key(key))

    def _note_agency_activity(self, agency_rows: dict[str, AgencyRow], event: DossierEvent) -> None:
        row = agency_rows.get(event.agency_code)
        if row is None:
            row = agency_rows[event.agency_code] = AgencyRow.decode(self._stores.agencies.get(event.agency_code))
        if event.type == "heartbeat":
            row.last_heartbeat_us = max(row.last_heartbeat_us or event.occurred_at_us, event.occurred_at_us)
        else:
            row.last_event_us = max(row.last_event_us or event.occurred_at_us, event.occurred_at_us)


def read_counter_row(store: KeyValueStore, agency: str, period: str) -> CounterRow:
    return CounterRow.decode(store.get(counter_key(agency, period)))


def snapshot_counts(stores: StateStores, agency: str, period: str, catalogue: Catalogue) -> dict[str, int]:
    """The integer fields of an agency's snapshot hash: its counter row's counts and event
    counts and, from its procedure row and the catalogue, the procedure figures."""
    fields = read_counter_row(stores.counters, agency, period).snapshot_fields()
    procedures = read_counter_row(stores.procedures, agency, period).counts
    return {**fields, **catalogue.figures(agency, period, procedures)}


def read_agency_row(store: KeyValueStore, agency: str) -> AgencyRow:
    return AgencyRow.decode(store.get(agency))
