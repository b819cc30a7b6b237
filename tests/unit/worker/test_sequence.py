"""The sequenced state stage: whatever a consumer skips, repeats or stops delivering, every
batch message ends up applied in partition order, and the counts equal the batch computation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.worker.codec import SourcedEvent, encode_batch
from streams.worker.sequence import Applied, SequencedStateStage, position_key
from streams.worker.state import StateApplier, StateStores
from tests.support.oracle import batch_row_counts
from tests.support.simulated import faulty_stream
from tests.support.stores import all_counts, journaled_stores


class Rows:
    """The pending rows of one message: here the dict stores take writes at once."""

    def __init__(self) -> None:
        self.partition: int | None = None
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


class Positions:
    def __init__(self, stores: StateStores) -> None:
        self._store = stores.agencies

    def get_stored(self, key: str) -> bytes | None:
        return self._store.get(key)

    def set(self, key: str, value: bytes) -> None:
        self._store.set(key, value)


class Topic:
    """The batch topic as the broker holds it: every partition's messages, by offset."""

    def __init__(self, partitions: dict[int, list[bytes]]) -> None:
        self.partitions = partitions
        self.reads: list[tuple[int, int | None, int]] = []

    async def read(self, partition: int, start: int | None, end: int) -> AsyncIterator[tuple[int, bytes]]:
        self.reads.append((partition, start, end))
        for offset in range(start or 0, end):
            yield offset, self.partitions[partition][offset]

    async def stop(self) -> None:
        pass


def _batch_topic(events: list[SourcedEvent], partitions: int, batch_size: int) -> dict[int, list[bytes]]:
    """Events split by agency into `partitions`, in input order, `batch_size` per message."""
    by_partition: dict[int, list[SourcedEvent]] = {p: [] for p in range(partitions)}
    for item in events:
        by_partition[hash(item.event.agency_code) % partitions].append(item)
    topic: dict[int, list[bytes]] = {}
    for partition, items in by_partition.items():
        topic[partition] = [
            encode_batch(0, [(i.offset, i.event) for i in items[start : start + batch_size]])
            for start in range(0, len(items), batch_size)
        ]
    return topic


def _stage(stores: StateStores, topic: Topic, applied: list[Applied]) -> SequencedStateStage:
    return SequencedStateStage(StateApplier(stores), Rows(), Positions(stores), topic, applied.append)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), batch_size=st.sampled_from([1, 5, 40]), skip=st.floats(0.0, 0.6),
       stall=st.booleans())
def test_skipped_repeated_and_undelivered_messages_are_all_applied_once(seed: int, batch_size: int, skip: float,
                                                                         stall: bool) -> None:
    events = faulty_stream(seed, dossiers=60)
    topic = Topic(_batch_topic(events, 3, batch_size))
    stores = journaled_stores()
    applied: list[Applied] = []
    stage = _stage(stores, topic, applied)
    rng = random.Random(seed)

    async def consume() -> None:
        for partition, messages in topic.partitions.items():
            # The consumer skips some messages, re-delivers some, and may stop early for good.
            stop_at = rng.randrange(len(messages) + 1) if stall else len(messages)
            for offset in range(stop_at):
                if rng.random() < skip:
                    continue
                await stage.handle(partition, offset, messages[offset])
                if rng.random() < 0.1:
                    await stage.handle(partition, offset, messages[offset])  # a replay after a crash
        for partition, messages in topic.partitions.items():
            await stage.catch_up(partition, len(messages))

    asyncio.run(consume())
    assert all_counts(stores) == batch_row_counts(e.event for e in events)
    for partition, messages in topic.partitions.items():
        assert stage.position(partition) == (len(messages) or None)
        # Every message was applied at least once, in offset order within its partition.
        offsets = [a.offset for a in applied if a.partition == partition]
        assert set(offsets) == set(range(len(messages)))
        first_times = sorted(set(offsets), key=offsets.index)
        assert first_times == sorted(first_times)


def test_a_gap_is_read_from_the_topic_before_the_message_after_it() -> None:
    events = faulty_stream(seed=3, dossiers=20)
    topic = Topic({0: [encode_batch(0, [(i.offset, i.event)]) for i in events[:6]]})
    stores = journaled_stores()
    applied: list[Applied] = []
    stage = _stage(stores, topic, applied)

    async def consume() -> None:
        await stage.handle(0, 0, topic.partitions[0][0])
        await stage.handle(0, 4, topic.partitions[0][4])  # 1..3 never delivered

    asyncio.run(consume())
    assert topic.reads == [(0, 1, 4)]
    assert [a.offset for a in applied] == [0, 1, 2, 3, 4]
    assert stores.agencies.get(position_key(0)) == b"5"
    assert stage.refilled == {"gap": 3, "stall": 0}


def test_a_catch_up_stops_when_the_partition_is_no_longer_owned() -> None:
    events = faulty_stream(seed=5, dossiers=20)
    topic = Topic({1: [encode_batch(0, [(i.offset, i.event)]) for i in events[:8]]})
    stores = journaled_stores()
    applied: list[Applied] = []
    owned = iter([True, True, True, True, False])
    stage = SequencedStateStage(StateApplier(stores), Rows(), Positions(stores), topic, applied.append,
                                lambda partition: next(owned, False))

    async def consume() -> int:
        await stage.handle(1, 0, topic.partitions[1][0])
        return await stage.catch_up(1, 8)

    # Checked for the delivered message, before the catch-up, then before each message read.
    assert asyncio.run(consume()) == 2
    assert stage.position(1) == 3


def test_a_message_of_a_partition_no_longer_held_is_left_to_its_next_owner() -> None:
    events = faulty_stream(seed=9, dossiers=20)
    topic = Topic({0: [encode_batch(0, [(i.offset, i.event)]) for i in events[:3]]})
    stores = journaled_stores()
    applied: list[Applied] = []
    stage = SequencedStateStage(StateApplier(stores), Rows(), Positions(stores), topic, applied.append,
                                lambda partition: partition != 0)
    asyncio.run(stage.handle(0, 0, topic.partitions[0][0]))
    assert applied == []
    assert stage.position(0) is None
    assert all_counts(stores) == {}


def test_a_replay_of_a_message_applied_here_in_this_generation_is_not_applied_again() -> None:
    # A catch-up ran ahead of a slow consumer: the consumer's later deliveries of the same
    # messages change nothing, so they cost nothing; after a rebalance, replays apply again
    # (the crash-repair path: rows lost with a crash are rewritten by the replay).
    events = faulty_stream(seed=11, dossiers=20)
    topic = Topic({0: [encode_batch(0, [(i.offset, i.event)]) for i in events[:6]]})
    stores = journaled_stores()
    applied: list[Applied] = []
    generation = [1]
    stage = SequencedStateStage(StateApplier(stores), Rows(), Positions(stores), topic, applied.append,
                                generation=lambda: generation[0])

    async def consume() -> None:
        await stage.handle(0, 0, topic.partitions[0][0])
        await stage.catch_up(0, 6)                        # 1..5 read from the topic
        for offset in range(1, 6):                        # the consumer delivers them late
            await stage.handle(0, offset, topic.partitions[0][offset])
        generation[0] = 2                                 # a rebalance
        await stage.handle(0, 4, topic.partitions[0][4])  # re-delivered from the committed offset

    asyncio.run(consume())
    assert [a.offset for a in applied] == [0, 1, 2, 3, 4, 5, 4]
    assert stage.replays_skipped == 5
    assert all_counts(stores) == batch_row_counts(i.event for i in events[:6])


def test_replays_below_the_stored_position_apply_until_this_process_has_applied_them() -> None:
    # After a restart the restored position is ahead of the consumer's committed offset: the
    # re-delivered messages are applied (they repair rows a crash may have lost) once each.
    events = faulty_stream(seed=13, dossiers=20)
    topic = Topic({0: [encode_batch(0, [(i.offset, i.event)]) for i in events[:5]]})
    stores = journaled_stores()
    stores.agencies.set(position_key(0), b"4")  # restored from the changelog
    applied: list[Applied] = []
    stage = _stage(stores, topic, applied)

    async def consume() -> None:
        for offset in (1, 2, 2, 1, 3, 4):
            await stage.handle(0, offset, topic.partitions[0][offset])

    asyncio.run(consume())
    assert [a.offset for a in applied] == [1, 2, 3, 4]
    assert stage.replays_skipped == 2
    assert stage.position(0) == 5
