"""Reading a topic as it is now, to its end, with headers: the dead-letter checks.

A `KafkaConsumer` iterated with `consumer_timeout_ms` stops only after that long without a
record, so every such read cost its whole timeout even when every record had arrived at once.
This stops at the end offsets instead (streams.kafka.compacted.read_whole_topic does the same
for the CLI, without headers).
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

from tests.support.waiting import wait_until


def read_to_end(bootstrap_servers: str, topic: str, *, partitions: list[int] | None = None, timeout_s: float = 60.0,
                **consumer_options: object) -> list[ConsumerRecord]:
    """Every record of `topic` (or of its `partitions`) from the beginning to the end offsets the
    broker reports when the read starts (or its fetches report), in offset order per partition. AssertionError when the
    topic does not exist or the end is not reached within `timeout_s`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **consumer_options)
    try:
        numbers = partitions if partitions is not None else sorted(
            wait_until(lambda: consumer.partitions_for_topic(topic), 30, f"topic {topic} to exist"))
        tps = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s

        def at_end(tp: TopicPartition) -> bool:
            # Tansu's ListOffsets may lag behind; the fetch high watermark does not (as in compacted.py).
            highwater = consumer.highwater(tp)
            return highwater is not None and consumer.position(tp) >= max(ends[tp], highwater)

        while not all(at_end(tp) for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end offsets {ends} within {timeout_s:.0f} s")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
