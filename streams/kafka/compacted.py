"""The CLI's side of the small compacted topics (agency control, bulletins): produce records
and wait for every ack, or read a whole topic once to its end.

Both use kafka-python (blocking, the CLI runs one command and exits). Broker errors become
`ExternalServiceError` with one readable line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from streams.errors import ExternalServiceError
from streams.kafka.security import kafka_python_security
from streams.settings import Settings

# A published bulletin of a year is ~150 KB of JSON; leave room for the largest.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def produce_acked(settings: Settings, topic: str, messages: list[tuple[bytes, bytes | None]], *, what: str,
                  client_id: str, timeout_s: float = 30.0) -> list[tuple[int, int]]:
    """Produce records in order and wait for every ack; returns each one's (partition, offset)."""
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", retries=5,
            max_in_flight_requests_per_connection=1, client_id=client_id, max_request_size=MAX_RECORD_BYTES,
            **kafka_python_security(settings),
        )
    except KafkaError as exc:
        raise ExternalServiceError(f"cannot reach broker {settings.broker}: {exc}") from exc
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        acks = [future.get(timeout=timeout_s) for future in futures]
    except KafkaError as exc:
        raise ExternalServiceError(f"the broker did not acknowledge the {what}: {exc}") from exc
    finally:
        producer.close(timeout=10)
    return [(metadata.partition, metadata.offset) for metadata in acks]


def read_whole_topic(settings: Settings, topic: str, *, client_id: str,
                     timeout_s: float = 30.0) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of the topic as it is now, from the beginning to its end:
    (partition, offset, key, value), in offset order per partition."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=client_id, fetch_max_bytes=2 * MAX_RECORD_BYTES,
            max_partition_fetch_bytes=MAX_RECORD_BYTES, **kafka_python_security(settings),
        )
    except KafkaError as exc:
        raise ExternalServiceError(f"cannot reach broker {settings.broker}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while True:
            for tp, messages in consumer.poll(timeout_ms=200).items():
                for message in messages:
                    yield tp.partition, message.offset, message.key, message.value
            ends = consumer.end_offsets(tps)
            # Tansu's ListOffsets may lag behind; the fetch high watermark does not.
            if all(consumer.highwater(tp) is not None and consumer.position(tp) >= max(ends[tp], consumer.highwater(tp) or 0)
                   for tp in tps):
                break
            if time.monotonic() > deadline:
                raise ExternalServiceError(f"could not read {topic} to its end within {timeout_s:.0f} s")
    except KafkaError as exc:
        raise ExternalServiceError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
