"""Messages of the small compacted topics (agency control, procedure catalogue), pure.

A message's key (UTF-8) names what its record is about; its value is a JSON object, or null
for a tombstone that withdraws the key. What a topic says is the latest record of every key
(what compaction keeps), which `apply_latest` folds one message into. The checks of the key's
form and of the record's fields are each topic's own (streams/domain/control.py, catalogue.py).
"""

from __future__ import annotations

from typing import TypeVar

import orjson

from streams.errors import InvalidCompactedRecord

R = TypeVar("R")


def decode_key(key: bytes | None, error: type[InvalidCompactedRecord], missing: str) -> str:
    """The message key as text; `error(missing)` when there is none."""
    if key is None:
        raise error(missing)
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise error("the key is not UTF-8") from None


def decode_value(text_key: str, value: bytes, max_bytes: int, error: type[InvalidCompactedRecord]) -> object:
    """The JSON of a message value of at most `max_bytes` (not yet checked as a record)."""
    if len(value) > max_bytes:
        raise error(f"key {text_key!r}: record larger than {max_bytes} bytes")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise error(f"key {text_key!r}: the value is not JSON") from None


def tombstone(key: str) -> tuple[bytes, None]:
    """The message that withdraws `key`."""
    return key.encode("utf-8"), None


def apply_latest(records: dict[str, R], key: str, record: R | None) -> None:
    """Fold one message into the latest-record-per-key map (None: a tombstone)."""
    if record is None:
        records.pop(key, None)
    else:
        records[key] = record
