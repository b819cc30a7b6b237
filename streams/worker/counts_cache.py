"""The snapshot fields of the current periods' rows, kept between snapshot ticks.

Every tick reads each owned agency's counts of the current day, month, quarter and year (for
the gauges of `/metrics`); re-reading and re-deriving all of them each second was about a
tenth of a busy worker's time, for rows that mostly had not changed. Here a row is read
again only when the applier dirtied it since (the `dirty_counters` of its batch outcome,
which also go to the snapshot publisher), when the catalogue changed (its procedure figures),
or when the worker's partitions may have been restored from a changelog (`clear`).

Only the periods passed to `keep_only` stay: a backlog touches rows of every past period,
and those are read once per write, not every tick, so keeping them would only cost memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streams.domain.catalogue import Catalogue

CountsReader = Callable[[str, str, Catalogue], dict[str, int]]  # (agency, period, catalogue) -> fields


class CountsCache:
    """(agency, period) -> snapshot fields, as read from the tables after its last change."""

    def __init__(self, read: CountsReader) -> None:
        self._read = read
        self._rows: dict[tuple[str, str], dict[str, int]] = {}
        self._catalogue: Catalogue | None = None
        self._kept: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self._rows)

    def counts(self, agency: str, period: str, catalogue: Catalogue) -> dict[str, int]:
        """The fields of the row, read from the tables unless cached since its last change.
        The caller must not change the returned dict."""
        if catalogue is not self._catalogue:
            self._rows.clear()  # the procedure figures of every row may differ
            self._catalogue = catalogue
        key = (agency, period)
        fields = self._rows.get(key)
        if fields is None:
            fields = self._read(agency, period, catalogue)
            if period in self._kept:
                self._rows[key] = fields
        return fields

    def changed(self, pairs: Iterable[tuple[str, str]]) -> None:
        """These rows were written: read them again when next asked for."""
        rows = self._rows
        if rows:
            for pair in pairs:
                rows.pop(pair, None)

    def keep_only(self, periods: Iterable[str]) -> None:
        """Cache the rows of these periods only (the current ones), from now on."""
        kept = frozenset(periods)
        if kept != self._kept:
            self._kept = kept
            self._rows = {key: fields for key, fields in self._rows.items() if key[1] in kept}

    def clear(self) -> None:
        """The tables may have changed under it (partitions restored or moved)."""
        self._rows.clear()
