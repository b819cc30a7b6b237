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
from typing import Protocol

import orjson

from streams.domain.catalogue import Catalogue
from streams.domain.dossier import (
    DayCounts,
    PeriodCounts,
    counts_by_period,
    counts_delta,
    is_count_neutral,
    periods_at,
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
        counter_rows: dict[str, CounterRow] = {}
        procedure_rows: dict[str, CounterRow] = {}
        agency_rows: dict[str, AgencyRow] = {}
        dirty_dossiers: set[str] = set()
        dirty_counters: set[str] = set()
        dirty_procedures: set[str] = set()

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
                self._fold_delta(counter_rows, dirty_counters, agency, item, {}, applied_at_us, duplicate=True)
                continue

            dossier = dossier_rows.get(dossier_key)
            if dossier is None:
                dossier = dossier_rows[dossier_key] = decode_dossier(stored_dossiers[dossier_key])

            delta = self._delta_for(dossier, item)
            if delta is None:
                outcome.results[(event.type, "duplicate")] += 1
                self._fold_delta(counter_rows, dirty_counters, agency, item, {}, applied_at_us, duplicate=True)
                continue
            # Written again on a replay too: a crash may have kept the row in the local store
            # but not in the changelog, which is what a new owner of the partition restores.
            index_rows[index_key] = position
            dirty_dossiers.add(dossier_key)
            outcome.results[(event.type, "applied")] += 1
            counts, procedures = counts_by_period(delta)
            self._fold_delta(counter_rows, dirty_counters, agency, item, counts, applied_at_us, duplicate=False)
            if procedures:
                self._fold_procedures(procedure_rows, dirty_procedures, agency, item, procedures)

        for key, value in index_rows.items():
            self._stores.event_index.set(key, value)
        for key in dirty_dossiers:
            self._stores.dossiers.set(key, encode_dossier(dossier_rows[key]))
        for key in dirty_counters:
            self._stores.counters.set(key, counter_rows[key].encode())
            outcome.dirty_counters.add(split_counter_key(key))
        for key in dirty_procedures:
            self._stores.procedures.set(key, procedure_rows[key].encode())
            outcome.dirty_counters.add(split_counter_key(key))
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

    def _fold_delta(
        self,
        counter_rows: dict[str, CounterRow],
        dirty_counters: set[str],
        agency: str,
        item: SourcedEvent,
        delta: PeriodCounts,
        applied_at_us: int,
        *,
        duplicate: bool,
    ) -> None:
        """Fold the event's count deltas and its event counts into the rows of the periods its
        deltas change (a duplicate: the periods of its own `occurred_at`), each row at most once.
        An applied event that changes no count touches no row, as before: no extra writes."""
        partition_key = str(item.source_partition)
        offset = item.offset
        event = item.event
        kinds = kind_increments(duplicate=duplicate, event_type=event.type, supersedes=event.supersedes)
        by_period = dict.fromkeys(periods_at(event.occurred_at_us), _NO_CHANGES) if duplicate else delta
        prefix = agency + SEP  # counter_key
        for period, changes in by_period.items():
            key = prefix + period
            row = counter_rows.get(key)
            if row is None:
                row = CounterRow.decode(self._stores.counters.get(key))
                counter_rows[key] = row
            dirty_counters.add(key)
            offsets = row.offsets
            if offsets.get(partition_key, -1) >= offset:
                # Already folded in before a crash: unchanged, but written again so that the
                # changelog has it even if the crash came before the changelog did.
                continue
            counts = row.counts
            for count_field, amount in changes.items():
                counts[count_field] = counts.get(count_field, 0) + amount
            events = row.events
            for name in kinds:
                events[name] = events.get(name, 0) + 1
            if not duplicate and applied_at_us >= period_end_us(period):  # the rule of finality.event_increments
                events["events_after_close"] = events.get("events_after_close", 0) + 1
            offsets[partition_key] = offset

    def _fold_procedures(
        self,
        procedure_rows: dict[str, CounterRow],
        dirty_procedures: set[str],
        agency: str,
        item: SourcedEvent,
        delta: PeriodCounts,
    ) -> None:
        """Fold per-procedure deltas into the procedure rows of their periods, by the same
        highest-offset rule as the counter rows; a procedure whose count falls to 0 leaves."""
        partition_key = str(item.source_partition)
        offset = item.offset
        prefix = agency + SEP  # counter_key
        for period, changes in delta.items():
            key = prefix + period
            row = procedure_rows.get(key)
            if row is None:
                row = procedure_rows[key] = CounterRow.decode(self._stores.procedures.get(key))
            dirty_procedures.add(key)  # written again on a replay too, as the counter rows
            offsets = row.offsets
            if offsets.get(partition_key, -1) >= offset:
                continue
            counts = row.counts
            for name, amount in changes.items():
                total = counts.get(name, 0) + amount
                if total:
                    counts[name] = total
                else:  # no dossier left: the procedure leaves the set
                    del counts[name]
            offsets[partition_key] = offset

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
