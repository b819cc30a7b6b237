"""The one exception hierarchy of EMC Streams."""

from __future__ import annotations


class EmcError(Exception):
    """Base of every error raised on purpose by EMC Streams."""


class ConfigError(EmcError):
    """A flag or setting is invalid; the CLI prints it as one line and exits 2."""


class InvalidEvent(EmcError):
    """An input event breaks the contract; it goes to the dead-letter topic.

    `reason` is a short stable code (e.g. ``not_json``, ``schema``, ``unknown_agency``),
    `detail` a human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RegistryError(EmcError):
    """The agency registry data is inconsistent."""


class ExternalServiceError(EmcError):
    """A broker, Redis or other external process could not be reached or started."""


class InvariantError(EmcError):
    """A check of the code's own logic failed: a bug, not bad input (raised where `assert`
    would vanish under `python -O`)."""


class UnacknowledgedSends(ExternalServiceError):
    """Records sent to the broker were not acknowledged (`emc publish`, `emc simulate --broker`
    exit 1 with this line): `failed` of `sent` records, and the first error seen."""

    def __init__(self, failed: int, sent: int, first_error: BaseException | None) -> None:
        super().__init__(f"{failed} of {sent} records failed: not acknowledged by the broker (first error: {first_error!r})")
        self.failed = failed
        self.sent = sent


class InvalidCompactedRecord(EmcError):
    """A record of one of the small compacted topics (agency control, procedure catalogue)
    is invalid: the CLI refuses it (exit 2) and a worker skips it with a log line."""


class InvalidControlRecord(InvalidCompactedRecord):
    """A record of the agency-control topic (target, maintenance) is invalid: the CLI refuses
    it (exit 2) and a worker skips it with a log line."""


class KeyringError(ConfigError):
    """The keyring of agency keys is malformed: the worker (or CLI) stops with one line."""


class Unauthenticated(EmcError):
    """An event's signature does not prove its agency. `reason` is a short stable code
    (``missing_signature``, ``unknown_key``, ``key_not_valid``, ``wrong_agency``,
    ``bad_signature``); the event is dead-lettered with reason ``unauthenticated``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidCatalogueRecord(InvalidCompactedRecord):
    """A record of the procedure-catalogue topic is invalid: the CLI refuses it (exit 2) and
    a worker skips it with a log line."""
