"""Table changelog records sent per batch message, not per row.

Faust sends one changelog record per table write, each through its producer buffer with a
future, a callback and several event-loop turns: about two records per event (event index
and dossier row), the largest cost of a loaded worker. Here the agent writes rows to the
tables' stores (`RowWriter`), and `ChangelogWriter.flush` writes the rows of one batch message
to RocksDB as one write batch per table partition, sends them packed into one producer batch
per changelog partition, then waits for the broker's acks before the agent takes the next
message. So a batch message whose offset Faust
commits always has its rows in the changelog (Faust's own buffer gives no such order).

Faust restores tables from these records as from its own: same topic and partition (the batch
message's partition, as Faust chooses), raw key and value, and on ack the store's persisted
offset is set to the last record's offset, as Faust's `_on_changelog_sent` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rocksdict import WriteBatch

from streams.errors import InvariantError

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 30.0


@dataclass
class ChangelogWriter:
    """Rows written in the current batch message, per (table, changelog partition)."""

    app: faust.App
    pending: dict[tuple[faust.Table, int], dict[bytes, bytes]] = field(default_factory=dict)
    # The batch partition of the message being applied: its rows go to this changelog
    # partition (as Faust's own table writes go to the partition of the current message).
    partition: int | None = None

    def add(self, table: faust.Table, partition: int, key: bytes, value: bytes) -> None:
        # A row written twice in one message goes out once, with its last (whole) value.
        self.pending.setdefault((table, partition), {})[key] = value

    def pending_row(self, table: faust.Table, partition: int, key: bytes) -> bytes | None:
        rows = self.pending.get((table, partition))
        return None if rows is None else rows.get(key)

    async def flush(self) -> None:
        """Write the pending rows to the stores, send them and wait until the broker has them
        all; while it does not acknowledge them, retry with backoff (rows are whole values:
        resending is harmless)."""
        pending, self.pending = self.pending, {}
        self._write_stores(pending)
        attempt = 0
        while pending:
            try:
                await self._send(pending)
                return
            except (KafkaError, asyncio.TimeoutError, OSError) as exc:
                attempt += 1
                delay = min(MAX_RETRY_DELAY_S, 0.5 * 2 ** (attempt - 1))
                log.warning("changelog records not acknowledged, retrying in %.1f s: %r", delay, exc,
                            extra={"event": "changelog_retry", "attempt": attempt})
                await asyncio.sleep(delay)

    async def _send(self, pending: dict[tuple[faust.Table, int], dict[bytes, bytes]]) -> None:
        producer = await self._producer()
        sent: list[tuple[faust.Table, asyncio.Future, int]] = []
        for (table, partition), rows in pending.items():
            topic = table.changelog_topic.get_topic_name()
            batch, count = producer.create_batch(), 0
            for key, value in rows.items():
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                    sent.append((table, await producer.send_batch(batch, topic, partition=partition), count))
                    batch, count = producer.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None)  # a batch takes its first record whatever its size
                count += 1
            sent.append((table, await producer.send_batch(batch, topic, partition=partition), count))
        for _, future, _ in sent:
            # After one failed send the others are resent anyway: take every outcome, so that
            # asyncio does not log each as "exception never retrieved" (seen in broker restarts).
            future.add_done_callback(_take_outcome)
        for table, future, count in sent:
            metadata = await future
            # Batches of one partition are acked in order, so the last set is the highest.
            table.data.set_persisted_offset(metadata.topic_partition, metadata.offset + count - 1)

    @staticmethod
    def _write_stores(pending: dict[tuple[faust.Table, int], dict[bytes, bytes]]) -> None:
        # One RocksDB write batch per table partition instead of a `put` per row through
        # Faust's `_set` (which also fills a key-to-partition cache that Faust's own changelog
        # restore leaves alone too). Synchronous, before the first await of `flush`: no other
        # task runs between the agent's writes and the store having them.
        for (table, partition), rows in pending.items():
            batch = WriteBatch(raw_mode=True)  # raw, as Faust opens the tables' RocksDB
            for key, value in rows.items():
                batch.put(key, value)
            table.data._db_for_partition(partition).write(batch)

    async def _producer(self) -> AIOKafkaProducer:
        faust_producer = await self.app.maybe_start_producer()
        return faust_producer._ensure_producer()  # type: ignore[attr-defined]


def _take_outcome(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class RowWriter:
    """`KeyValueStore` over a Faust table with raw bytes keys and values, whose writes go to the
    store and to the changelog when the writer flushes, and are read back from the writer
    before then. Writes only inside the agent."""

    def __init__(self, table: faust.Table, changelog: ChangelogWriter) -> None:
        self._table = table
        self._changelog = changelog
        # The worker's tables are bytes to bytes with Faust's `raw` codec, which stores the
        # bytes as they are: then the serializer layers (a registry lookup and a codec call per
        # key and per value, 9 % of the state stage's CPU) are skipped.
        self._raw = table.key_serializer == "raw" and table.value_serializer == "raw"

    def get(self, key: str) -> bytes | None:
        # One store read with the table's serializers. `Table.get` asks the store's
        # `__contains__` first (a second RocksDB read on a hit) and goes through Faust's mapping
        # layers and sensors: 10 % of a loaded worker's CPU, about half of it saved here (py-spy).
        store = self._table.data
        raw_key = key.encode("utf-8")
        stored_key = raw_key if self._raw else store._encode_key(raw_key)
        partition = self._changelog.partition
        # No row pending at all (the state stage reads before it writes): skip the lookup,
        # which hashes the Faust table in Python.
        stored_value = (self._changelog.pending_row(self._table, partition, stored_key)
                        if partition is not None and self._changelog.pending else None)
        if stored_value is None:
            # Not the partition's store alone: `partition` stays that of the last message
            # applied, and readers outside the agent (snapshots, the dossier endpoint) read
            # rows of every partition; Faust's `_get` takes the current event's partition.
            stored_value = store._get(stored_key)
        if stored_value is None or self._raw:
            return stored_value
        return store._decode_value(stored_value)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The rows of these keys in one RocksDB multi-get, as `get` reads them one by one.

        Only for the rows of the batch message being applied, in the same synchronous step
        (the StateApplier): they are read from that message's partition's store alone, where
        all of its agencies' rows are (as Faust's `_get` reads the current event's partition)."""
        partition = self._changelog.partition
        if partition is None or self._changelog.pending or not self._raw:
            return [self.get(key) for key in keys]
        return self._table.data._db_for_partition(partition).get([key.encode("utf-8") for key in keys])

    def get_stored(self, key: str) -> bytes | None:
        """The row as the store has it, without the rows of the message being applied."""
        store = self._table.data
        raw_key = key.encode("utf-8")
        stored_value = store._get(raw_key if self._raw else store._encode_key(raw_key))
        if stored_value is None or self._raw:
            return stored_value
        return store._decode_value(stored_value)

    def set(self, key: str, value: bytes) -> None:
        partition = self._changelog.partition
        if partition is None:
            raise InvariantError("table rows are written only while a batch message is applied")
        raw_key = key.encode("utf-8")
        if not self._raw:
            # The bytes Faust itself would write to the store and send to the changelog, with
            # the table's serializers, so that a restore from the changelog gives back the same rows.
            store = self._table.data
            raw_key, value = store._encode_key(raw_key), store._encode_value(value)
        self._changelog.add(self._table, partition, raw_key, value)

    def keys(self) -> list[str]:
        return list(self.iter_keys())

    def iter_keys(self) -> Iterator[str]:
        """The keys one at a time, for a caller that yields to the event loop while it scans."""
        for key in self._table.keys():
            yield key.decode("utf-8")
