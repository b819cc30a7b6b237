"""The state stage applies each batch partition's messages in offset order, every one of them,
whatever the consumer in front of it delivers.

Faust's consumer can skip batch messages across a rebalance (records fetched before a
generation change are dropped in `Consumer.getmany`, and a later ack commits past them) and
can stop delivering a partition it still holds (the stall of issue 18: figures frozen while
the input lag reads 0). Both once left counts short for good. So the state stage does not
trust delivery: beside the rows of each batch message it stores the partition's *position*
(the offset after the last message applied), in the same changelog flush. Then:

- a message at the position, or below it (a replay after a crash), is applied as before
  (replays are idempotent, see `streams.worker.state`), except one this process has itself
  applied and flushed since the group's current generation began: re-applying it would change
  nothing, and when a catch-up ran ahead of a slow consumer it doubled the work of a worker
  already behind (seen on a loaded machine: Faust's consumer then fell further behind with each
  catch-up, and the counts took minutes to settle);
- a message beyond the position means messages were skipped: they are read from the batch
  topic directly, applied in order, and then the message itself;
- a partition whose position stays below the topic's end while the consumer delivers nothing
  is caught up the same way by the progress watch (`catch_up`).

The position row lives in the agencies table under a key no agency code can take. It is
conservative: if a crash kept the position but lost other rows, the consumer re-delivers the
message (it was never acked) and the replay rewrites them; if it lost the position, messages
are read again and replayed. Either way every message below the position has been applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.errors import ExternalServiceError
from streams.worker.codec import decode_batch
from streams.worker.state import BatchOutcome, StateApplier

log = logging.getLogger(__name__)

# Agency codes are short upper-case ASCII (the registry), so a key starting with NUL is free.
_POSITION_KEY_PREFIX = "\x00batch-position:"

# Reading skipped messages gives up when the broker delivers nothing for this long: the agent
# then ends, and the worker exits for its supervisor (crash-only), rather than going on with
# a hole in a partition.
READ_TIMEOUT_S = 60.0


def position_key(partition: int) -> str:
    # One key per partition: Faust's RocksDB store looks a key up in every partition it holds.
    return f"{_POSITION_KEY_PREFIX}{partition}"


class PendingRows(Protocol):
    """Where the rows of the message being applied wait until `flush` (ChangelogWriter)."""

    partition: int | None

    async def flush(self) -> None: ...


class PositionStore(Protocol):
    def get_stored(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...


class BatchSource(Protocol):
    def read(self, partition: int, start: int | None, end: int) -> AsyncIterator[tuple[int, bytes]]: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """One batch message applied to the tables."""

    partition: int
    offset: int
    outcome: BatchOutcome
    refilled: str | None = None  # why it was read from the topic past the consumer ("gap", "stall")


class BatchReader:
    """Reads a range of one batch partition straight from the broker (no group, no commit)."""

    def __init__(self, bootstrap_servers: str, topic: str, security: Mapping[str, object]) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._security = dict(security)
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, partition: int, start: int | None, end: int) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, value) of the messages in [start, end), in order (start None: from the
        partition's first message)."""
        consumer = await self._started()
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        if start is None:
            await consumer.seek_to_beginning(tp)
            start = await consumer.position(tp)
        else:
            consumer.seek(tp, start)
        position, last_progress = start, time.monotonic()
        while position < end:
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            records = batches.get(tp, [])
            if not records:
                if time.monotonic() - last_progress > READ_TIMEOUT_S:
                    raise ExternalServiceError(
                        f"{self._topic}[{partition}]: no message at offset {position} from the broker for "
                        f"{READ_TIMEOUT_S:.0f} s (reading {start}..{end - 1} to fill a gap)")
                continue
            last_progress = time.monotonic()
            for record in records:
                if record.offset >= end:
                    return
                if record.offset > position:
                    # Only a topic whose head was deleted (retention) has holes: nothing to apply.
                    log.error("batch messages %d..%d of partition %d are no longer in the topic",
                              position, record.offset - 1, partition,
                              extra={"event": "batch_messages_missing", "partition": partition,
                                     "first": position, "last": record.offset - 1})
                position = record.offset + 1
                yield record.offset, record.value

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024, **self._security,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


class SequencedStateStage:
    """Applies batch messages to the tables, per partition in offset order, with no gap."""

    def __init__(self, applier: StateApplier, changelog: PendingRows, positions: PositionStore, reader: BatchSource,
                 on_applied: Callable[[Applied], None], owns: Callable[[int], bool] = lambda partition: True,
                 generation: Callable[[], object] = lambda: None) -> None:
        self._applier = applier
        self._owns = owns
        self._generation = generation
        # Per partition: (generation, first, end) — this process applied and flushed every
        # message from `first` to `end - 1` in that generation of the group.
        self._applied_here: dict[int, tuple[object, int, int]] = {}
        self.replays_skipped = 0
        self._changelog = changelog
        self._positions = positions
        self._reader = reader
        self._on_applied = on_applied
        # One message at a time across the Faust agent and the catch-up: both write the
        # same rows and the same changelog partitions.
        self._lock = asyncio.Lock()
        self.refilled: dict[str, int] = {"gap": 0, "stall": 0}  # messages read past the consumer, by why

    def position(self, partition: int) -> int | None:
        """The offset after the last message applied to `partition` (None: none recorded)."""
        raw = self._positions.get_stored(position_key(partition))
        return None if raw is None else int(raw)

    async def handle(self, partition: int, offset: int, payload: bytes) -> None:
        """A message the consumer delivered: first any it skipped, then itself."""
        async with self._lock:
            if not self._owns(partition):
                # Revoked (or being rebalanced): the next owner applies it, from the changelog
                # as it stands. Rows written now could reach the changelog after that owner read
                # it and overwrite newer rows there, which a later restore would bring back.
                log.info("batch message %d of partition %d not applied: the partition is not held now", offset, partition,
                         extra={"event": "batch_not_owned", "partition": partition, "offset": offset})
                return
            if self._applied_in_this_generation(partition, offset):
                self.replays_skipped += 1
                return
            position = self.position(partition)
            if position is None and offset > 0:
                # Nothing applied yet (a new deployment, or state from before positions were
                # kept): the messages before this one are read from the partition's start.
                log.info("partition %d: first message applied here is at offset %d, reading the ones before it",
                         partition, offset, extra={"event": "batch_start", "partition": partition, "offset": offset})
                await self._apply_range(partition, None, offset, "gap")
            elif position is not None and offset > position:
                log.warning("batch messages %d..%d of partition %d were not delivered: reading them from the topic",
                            position, offset - 1, partition,
                            extra={"event": "batch_gap", "partition": partition, "first": position, "last": offset - 1})
                await self._apply_range(partition, position, offset, "gap")
            await self._apply(partition, offset, payload)

    async def catch_up(self, partition: int, end: int) -> int:
        """Apply `partition` up to `end` from the topic, while the consumer delivers nothing;
        stops early when the partition is no longer held. The number of messages applied."""
        async with self._lock:
            position = self.position(partition)  # None: nothing applied yet, start from the first message
            if (position is not None and position >= end) or not self._owns(partition):
                return 0
            log.warning("partition %d of the batch topic stalled at %s of %d: applying the rest from the topic",
                        partition, position, end,
                        extra={"event": "state_catch_up", "partition": partition, "position": position, "end": end})
            return await self._apply_range(partition, position, end, "stall")

    async def _apply_range(self, partition: int, start: int | None, end: int, why: str) -> int:
        applied = 0
        async for offset, payload in self._reader.read(partition, start, end):
            if not self._owns(partition):
                break
            await self._apply(partition, offset, payload, why)
            applied += 1
            self.refilled[why] += 1
        return applied

    async def _apply(self, partition: int, offset: int, payload: bytes, refilled: str | None = None) -> None:
        self._changelog.partition = partition
        outcome = self._applier.apply_batch(decode_batch(payload))
        if offset + 1 > (self.position(partition) or 0):
            self._positions.set(position_key(partition), str(offset + 1).encode())
        await self._changelog.flush()  # rows and position in the changelog before the message is acked
        self._note_applied_here(partition, offset)
        self._on_applied(Applied(partition, offset, outcome, refilled))

    def _applied_in_this_generation(self, partition: int, offset: int) -> bool:
        known = self._applied_here.get(partition)
        return known is not None and known[0] == self._generation() and known[1] <= offset < known[2]

    def _note_applied_here(self, partition: int, offset: int) -> None:
        generation = self._generation()
        known = self._applied_here.get(partition)
        if known is not None and known[0] == generation and known[2] == offset:
            self._applied_here[partition] = (generation, known[1], offset + 1)  # the run goes on
        elif not self._applied_in_this_generation(partition, offset):
            # A new generation, or a replay below the run: a new run starts here (what is known
            # of the old one is dropped, which only costs a re-application).
            self._applied_here[partition] = (generation, offset, offset + 1)

    async def stop(self) -> None:
        await self._reader.stop()
