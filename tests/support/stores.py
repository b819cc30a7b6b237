"""In-memory table stores for the worker's StateApplier (the `get`/`set` of streams/worker/state.py)."""

from __future__ import annotations


class RecordingStore:
    """A dict store that also keeps every write in order, like a Faust table's changelog."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes: list[tuple[str, bytes]] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.writes.append((key, value))

    def keys(self) -> list[str]:
        return list(self.data)

    def changelog_records(self) -> list[tuple[bytes, bytes]]:
        """The writes as changelog records (UTF-8 keys), oldest first."""
        return [(key.encode("utf-8"), value) for key, value in self.writes]
