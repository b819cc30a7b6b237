"""The stateless ingest stage: validate, dead-letter, and batch events for the state stage.

Faust pays ~150 µs of plumbing per message (docs/operating.md, capacity), so the state agent must receive
*batches*. This stage reads the input topic with a plain aiokafka consumer, validates each
event once, sends bad ones to the dead-letter topic with their bytes and reason, and packs
the good ones into batch messages on the batch topic.

Exactness across crashes rests on two rules here:
- Every batch message holds events of one source partition in offset order, and a batch
  partition receives them from one producer, in order (aiokafka keeps one in-flight request
  per partition), so the state stage sees each source partition's offsets prefix-closed.
- Source offsets are committed only after every batch and dead letter up to them is acked;
  after a crash the stage re-reads from at or below what it already delivered, and the state
  stage recognises the replay by source offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.partitioner import murmur2

from streams.domain.events import MAX_EVENT_BYTES, DossierEvent, build_dossier_event, decode_event_fields
from streams.domain.registry import Registry
from streams.errors import ExternalServiceError, InvalidEvent
from streams.kafka.security import aiokafka_security
from streams.settings import Settings
from streams.worker.authentication import EventAuthenticator
from streams.worker.codec import encode_batch_of_wires
from streams.worker.health import Progress

log = logging.getLogger(__name__)

_LINGER_S = 0.05
_AGENCY_CODE = [field.name for field in fields(DossierEvent)].index("agency_code")  # in an event's fields
CLIENT_STOP_TIMEOUT_S = 3.0


@lru_cache(maxsize=16_384)  # the agencies are a few thousand; murmur2 in Python costs ~3 µs per event
def state_partition_for(agency_code: str, partitions: int) -> int:
    """The batch/state partition of an agency: Kafka's default (murmur2) partitioner.

    Fixed by the agency code alone, so that every worker agrees on which one owns an agency,
    whatever partitioner the producers used for the input topic.
    """
    return (murmur2(agency_code.encode("utf-8")) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    event_type: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("emc-reason", self.reason.encode()),
            ("emc-detail", self.detail.encode("utf-8", "replace")[:1000]),
            ("emc-source-topic", self.topic.encode()),
            ("emc-source-partition", str(self.partition).encode()),
            ("emc-source-offset", str(self.offset).encode()),
        ]


def validate_record(
    registry: Registry, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
    authenticator: EventAuthenticator | None = None, headers: Sequence[tuple[str, bytes]] = (), timestamp_ms: int = 0,
) -> DossierEvent | DeadLetter:
    """A valid event, or the dead letter that explains why it is not one.

    With an authenticator (EMC_AUTH audit or enforce) the signature is checked first, before
    the bytes are parsed, and the signing key's agency once they are."""
    outcome = validate_record_fields(registry, key, value, topic, partition, offset, authenticator, headers, timestamp_ms)
    return outcome if isinstance(outcome, DeadLetter) else build_dossier_event(*outcome)


def validate_record_fields(
    registry: Registry, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
    authenticator: EventAuthenticator | None = None, headers: Sequence[tuple[str, bytes]] = (), timestamp_ms: int = 0,
) -> tuple | DeadLetter:
    """validate_record's event as its fields in order (`decode_event_fields`): the wire form
    of a batch message, so that the stage never builds the event it only forwards."""
    raw = value if value is not None else b""
    try:
        signer = authenticator.signer(key, raw, headers, timestamp_ms) if authenticator is not None else None
        fields = decode_event_fields(raw, key)
        agency_code = fields[_AGENCY_CODE]
        if authenticator is not None:
            authenticator.check_agency(signer, agency_code)
        if agency_code not in registry:
            raise InvalidEvent("unknown_agency", f"agency_code {agency_code!r} is not in the registry")
        return fields
    except InvalidEvent as exc:
        return DeadLetter(key, raw, exc.reason, exc.detail, topic, partition, offset, _guess_type(raw))


def _guess_type(raw: bytes) -> str:
    # For the metric label only: the type a bad event claims, when it can be read at all. A
    # value over the size limit is not decoded (it may be megabytes): "unknown".
    if len(raw) > MAX_EVENT_BYTES:
        return "unknown"
    try:
        claimed = orjson.loads(raw).get("type")
        return claimed if isinstance(claimed, str) and len(claimed) <= 32 and claimed.isidentifier() else "unknown"
    except Exception:  # noqa: BLE001 - any unreadable input is simply "unknown"
        return "unknown"


@dataclass
class IngestStats:
    # input partition -> (next offset to deliver, messages behind it), for the lag gauge and
    # the stall detector
    progress: dict[int, Progress] = field(default_factory=dict)
    delivered: int = 0  # deliveries acknowledged since start: the stage as a whole advancing


class _CommitBeforeRevoke(ConsumerRebalanceListener):
    """Waits for the batch in flight to be acked and committed before giving partitions up,
    so the next owner starts exactly where this one stopped."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("ingest assigned %s", sorted(tp.partition for tp in assigned))


class IngestStage:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        on_dead_letter: Callable[[DeadLetter], None],
        authenticator: EventAuthenticator | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._authenticator = authenticator
        self._on_dead_letter = on_dead_letter
        self._lock = asyncio.Lock()
        self.stats = IngestStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        """Consume until cancelled; broker outages are retried with backoff and logged (the
        first failure of an outage at warning, the retries of the same outage at info)."""
        delay = 0.5
        failures = 0
        while True:
            try:
                await self._start()
                delay = 0.5
                if failures:
                    log.warning("ingest: broker answers again after %d failed attempts", failures,
                                extra={"event": "ingest_reconnected", "attempts": failures})
                    failures = 0
                await self._consume_forever()
            except asyncio.CancelledError:
                await asyncio.shield(self._stop())
                raise
            except KafkaError as exc:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.INFO,
                        "ingest: broker error, retrying in %.1f s: %s", delay, exc,
                        extra={"event": "ingest_retry", "attempt": failures})
                await self._stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _start(self) -> None:
        s = self._settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=5,
            max_request_size=8 * 1024 * 1024, client_id=f"{s.app_id}-ingest", **aiokafka_security(s),
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=s.ingest_group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
            # As the Faust consumer's: Tansu holds a Fetch for half its max wait even with records
            # waiting (aiokafka's default 500 ms), and on S3 storage needs seconds (Settings).
            fetch_max_wait_ms=s.state_fetch_max_wait_ms,
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, client_id=f"{s.app_id}-ingest",
            **aiokafka_security(s),
        )
        await self._consumer.start()
        self._consumer.subscribe([s.input_topic], listener=_CommitBeforeRevoke(self._lock))

    async def _stop(self) -> None:
        # Bounded: stopping a client whose broker is gone can wait for its request timeouts,
        # and a stop (SIGTERM, or a retry) must not. Offsets are committed after each delivery.
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), CLIENT_STOP_TIMEOUT_S)
                except Exception as exc:  # noqa: BLE001 - shutting down a broken client
                    log.info("ingest: a client did not stop cleanly: %r", exc)
        self._consumer = self._producer = None

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise ExternalServiceError("ingest: the consumer is not started")
        return self._consumer

    async def _consume_forever(self) -> None:
        consumer = self._ensure_consumer()
        while True:
            records = await consumer.getmany(timeout_ms=200, max_records=20_000)
            if records and sum(map(len, records.values())) < self._settings.batch_max_events:
                # A trickle: wait a little for more, so that the state stage gets batches, not
                # single events, each paying Faust's per-message cost and a round of row writes.
                await asyncio.sleep(_LINGER_S)
                for tp, more in (await consumer.getmany(timeout_ms=0, max_records=20_000)).items():
                    records.setdefault(tp, []).extend(more)
            if records:
                async with self._lock:
                    await self._deliver(records)
            await self._update_lag()

    async def _deliver(self, records: dict) -> None:
        consumer, producer = self._ensure_consumer(), self._producer
        if producer is None:
            raise ExternalServiceError("ingest: the producer is not started")
        s = self._settings
        pending: list[asyncio.Future] = []
        letters: list[DeadLetter] = []
        commit: dict[TopicPartition, int] = {}
        for tp, messages in records.items():
            by_target: dict[int, list[tuple[int, tuple]]] = {}
            for message in messages:
                outcome = validate_record_fields(self._registry, message.key, message.value, tp.topic, tp.partition,
                                                 message.offset, self._authenticator, message.headers, message.timestamp)
                if isinstance(outcome, DeadLetter):
                    pending.append(await producer.send(
                        s.dead_letter_topic, value=outcome.value, key=outcome.key, headers=outcome.headers(),
                        partition=tp.partition % s.partitions,
                    ))
                    letters.append(outcome)
                else:
                    target = state_partition_for(outcome[_AGENCY_CODE], s.partitions)
                    by_target.setdefault(target, []).append((message.offset, outcome))
            for target, events in by_target.items():
                for start in range(0, len(events), s.batch_max_events):
                    chunk = events[start : start + s.batch_max_events]
                    pending.append(await producer.send(
                        s.batch_topic, value=encode_batch_of_wires(tp.partition, chunk), partition=target,
                    ))
            commit[tp] = messages[-1].offset + 1
        await asyncio.gather(*pending)
        self.stats.delivered += 1
        for letter in letters:  # logged and counted once the dead-letter topic has acknowledged it
            log.info("dead letter", extra={"reason": letter.reason, "detail": letter.detail,
                                           "partition": letter.partition, "offset": letter.offset})
            self._on_dead_letter(letter)
        try:
            await consumer.commit(commit)
        except CommitFailedError as exc:
            # The group moved on; the next owner re-reads from the last commit, and the
            # state stage recognises those events as replays.
            log.warning("ingest: commit failed after a rebalance, events will be replayed: %s", exc)

    async def _update_lag(self) -> None:
        # The fetch high watermark, not ListOffsets: on Tansu the latter can lag behind.
        # Every fetched record is delivered and committed before this runs, so the position is
        # what this stage has done.
        consumer = self._ensure_consumer()
        progress: dict[int, Progress] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            progress[tp.partition] = Progress(done=position, lag=max(0, highwater - position))
        self.stats.progress = progress
