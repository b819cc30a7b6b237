"""In-memory table stores for the worker's StateApplier (the `get`/`set` of streams/worker/state.py)."""

from __future__ import annotations

import random

from streams.worker.state import StateStores, read_counter_row
from tests.support.oracle import nonzero


class RecordingStore:
    """A dict store that also keeps every write in order, like a Faust table's changelog."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes: list[tuple[str, bytes]] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.writes.append((key, value))

    def keys(self) -> list[str]:
        return list(self.data)

    def changelog_records(self) -> list[tuple[bytes, bytes]]:
        """The writes as changelog records (UTF-8 keys), oldest first."""
        return [(key.encode("utf-8"), value) for key, value in self.writes]


class JournaledStore(RecordingStore):
    """A store that can be rolled back to a commit point plus some of the writes since
    (`writes` is the journal of the writes not committed yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.durable: dict[str, bytes] = {}

    def commit(self) -> None:
        self.durable = dict(self.data)
        self.writes.clear()

    def crash(self, rng: random.Random) -> None:
        """Each key comes back as its committed version or any version written since.

        A changelog loses a suffix, but a worker restarting on its own RocksDB can also be
        ahead of its changelog, and restoring re-applies older changelog records over
        newer local rows: per key, any version since the commit is possible.
        """
        versions: dict[str, list[bytes]] = {}
        for key, value in self.writes:
            versions.setdefault(key, []).append(value)
        self.data = dict(self.durable)
        survivors = []
        for key, values in versions.items():
            chosen = rng.randint(-1, len(values) - 1)
            if chosen >= 0:
                self.data[key] = values[chosen]
                survivors.append((key, values[chosen]))
        self.writes = survivors  # still not committed


def journaled_stores() -> StateStores:
    """The five stores of a worker, each a JournaledStore."""
    return StateStores(JournaledStore(), JournaledStore(), JournaledStore(), JournaledStore(), JournaledStore())


def all_counts(stores: StateStores) -> dict[tuple[str, str], dict[str, int]]:
    """Every nonzero count of the counter rows and of the procedure rows (per-procedure
    counts), by (agency, period): what `batch_row_counts` computes from the events."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for store in (stores.counters, stores.procedures):
        for key in store.keys():  # type: ignore[attr-defined]
            agency, period = key.split("\x1f", 1)
            counts = nonzero(read_counter_row(store, agency, period).counts)
            if counts:
                found.setdefault((agency, period), {}).update(counts)
    return found
