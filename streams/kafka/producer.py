"""Publishing events to the input topic with kafka-python (the producer side)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.domain.signatures import Keyring, Signer
from streams.errors import ExternalServiceError, UnacknowledgedSends
from streams.kafka.security import kafka_python_security
from streams.settings import Settings

log = logging.getLogger(__name__)


def agency_key(line: bytes) -> bytes | None:
    """The message key of a JSON line: its agency_code, or None when it has none.

    Lines that are not JSON objects are still published (unkeyed): the worker
    dead-letters them with a reason, which is what a producer would want to see.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    code = obj.get("agency_code") if isinstance(obj, dict) else None
    return code.encode("utf-8") if isinstance(code, str) else None


class EventProducer:
    """Sends events keyed by agency; with a keyring, each one signed with its agency's key.
    Every send the broker does not acknowledge is counted: `flush()` (and so `send_messages`,
    `send_lines` and leaving a `with` block) raises `UnacknowledgedSends` naming how many
    records failed, so a failed send never goes unnoticed."""

    def __init__(self, settings: Settings, keyring: Keyring | None = None) -> None:
        self._topic = settings.input_topic
        self.signer = Signer(keyring) if keyring is not None else None
        self.sent = 0
        self.failed = 0
        self._first_error: Exception | None = None
        self._failures_lock = threading.Lock()  # errbacks run on kafka-python's sender thread
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20,
                batch_size=256 * 1024, retries=10, max_in_flight_requests_per_connection=1,
                **kafka_python_security(settings),
            )
        except KafkaError as exc:
            raise ExternalServiceError(f"cannot reach broker {settings.broker}: {exc}") from exc

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def send(self, key: bytes | None, value: bytes) -> None:
        headers = self.signer.headers(key, value, time.time_ns() // 1000) if self.signer is not None else None
        self.sent += 1
        try:
            future = self._producer.send(self._topic, key=key, value=value, headers=headers)
        except KafkaError as exc:  # refused before sending, e.g. a record over max_request_size
            self._failed(exc)
            return
        future.add_errback(self._failed)

    def _failed(self, exc: Exception) -> None:
        with self._failures_lock:
            self.failed += 1
            if self._first_error is None:
                self._first_error = exc

    def send_lines(self, lines: Iterable[bytes], progress: Callable[[int], None] | None = None) -> int:
        return self.send_messages(((agency_key(line), line) for line in lines if line.strip()), progress)

    def send_messages(self, messages: Iterable, progress: Callable[[int], None] | None = None) -> int:
        count = 0
        for message in messages:
            key, value = (message.key, message.value) if hasattr(message, "key") else message
            self.send(key, value)
            count += 1
            if progress is not None and count % 5000 == 0:
                progress(count)
        self.flush()
        if progress is not None:
            progress(count)
        return count

    def signing_summary(self) -> str:
        if self.signer is None:
            return "unsigned"
        unsigned = self.signer.unsigned
        return f"signed; {unsigned} without a key of their agency went unsigned" if unsigned else "signed"

    def flush(self) -> None:
        """Wait for every send; raise `UnacknowledgedSends` if any of them failed."""
        try:
            self._producer.flush(timeout=120)
        except KafkaError as exc:
            raise UnacknowledgedSends(self.sent - self.failed, self.sent, exc) from exc
        if self.failed:
            raise UnacknowledgedSends(self.failed, self.sent, self._first_error)

    def close(self) -> None:
        self._producer.close(timeout=30)
