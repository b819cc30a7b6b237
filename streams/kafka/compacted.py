"""The CLI's side of the small compacted topics (agency control, procedure catalogue,
bulletins): produce records and wait for every ack, or read a whole topic once to its end;
and `fold_record`, which the CLI's reader and the workers' feeds (streams/kafka/feed.py) use
to keep the latest valid record of every key.

Both use kafka-python (blocking, the CLI runs one command and exits). Broker errors become
`ExternalServiceError` with one readable line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from streams.domain.compacted import apply_latest
from streams.errors import ExternalServiceError, InvalidCompactedRecord
from streams.kafka.security import kafka_python_security
from streams.settings import Settings

log = logging.getLogger(__name__)

R = TypeVar("R")
# A topic's message parser: (key, value) -> (text key, record; None for a tombstone), raising
# InvalidCompactedRecord for a message that is not a valid record.
RecordParser = Callable[[bytes | None, bytes | None], tuple[str, R | None]]

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


def send_records(settings: Settings, topic: str, messages: list[tuple[bytes, bytes | None]], *, what: str,
                 client_id: str, timeout_s: float) -> list[tuple[int, int]]:
    """Produce records of a compacted topic in order and wait for every ack. Creates the topic
    first when it is missing, so that a broker's auto-creation never makes it a deleting one."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={topic})
    return produce_acked(settings, topic, messages, what=what, client_id=client_id, timeout_s=timeout_s)


def read_latest_records(settings: Settings, topic: str, parse: RecordParser[R], *, what: str, client_id: str,
                        timeout_s: float) -> dict[str, R]:
    """The latest valid record of every key, as the whole topic gives them now (invalid
    records are skipped, logged)."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={topic})
    records: dict[str, R] = {}
    for partition, offset, key, value in read_whole_topic(settings, topic, client_id=client_id, timeout_s=timeout_s):
        fold_record(parse, records, key, value, partition, offset, what=what)
    return records


def fold_record(parse: RecordParser[R], records: dict[str, R], key: bytes | None, value: bytes | None,
                partition: int, offset: int, *, what: str) -> bool:
    """Fold one message into the latest-record-per-key map; an invalid record is skipped with
    a warning (event `invalid_{what}_record`). True when the map changed."""
    try:
        text_key, record = parse(key, value)
    except InvalidCompactedRecord as exc:
        log.warning("skipping an invalid %s record at partition %d offset %d: %s", what, partition, offset, exc,
                    extra={"event": f"invalid_{what}_record", "partition": partition, "offset": offset})
        return False
    apply_latest(records, text_key, record)
    return True
