"""The snapshot tick's cache of the current periods' counts, and its duty cycle."""

from __future__ import annotations

import pytest

from streams.domain.catalogue import Catalogue
from streams.worker.app import PERIODIC_MAX_DELAY_S, PERIODIC_SHARE, periodic_delay
from streams.worker.counts_cache import CountsCache


class Tables:
    """Rows that change, and a count of the reads that reached them."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}
        self.reads = 0

    def read(self, agency: str, period: str, catalogue: Catalogue) -> dict[str, int]:
        self.reads += 1
        return {"received": self.rows.get((agency, period), 0), "catalogue": id(catalogue)}


def test_a_current_row_is_read_once_until_it_changes() -> None:
    tables, catalogue = Tables(), Catalogue()
    cache = CountsCache(tables.read)
    cache.keep_only(["2026-12-01", "2026-12"])
    tables.rows[("T01", "2026-12-01")] = 3
    assert cache.counts("T01", "2026-12-01", catalogue)["received"] == 3
    tables.rows[("T01", "2026-12-01")] = 4  # written, but not reported changed yet
    assert cache.counts("T01", "2026-12-01", catalogue)["received"] == 3
    assert tables.reads == 1
    cache.changed([("T01", "2026-12-01"), ("T02", "2026-12")])
    assert cache.counts("T01", "2026-12-01", catalogue)["received"] == 4
    assert tables.reads == 2


def test_rows_of_other_periods_are_read_every_time_and_not_kept() -> None:
    tables, catalogue = Tables(), Catalogue()
    cache = CountsCache(tables.read)
    cache.keep_only(["2026-12-01"])
    for _ in range(3):
        cache.counts("T01", "2025-04-30", catalogue)
    assert tables.reads == 3 and len(cache) == 0
    cache.counts("T01", "2026-12-01", catalogue)
    cache.keep_only(["2026-12-02"])  # a new day: yesterday's rows leave
    assert len(cache) == 0


def test_a_new_catalogue_or_a_clear_reads_every_row_again() -> None:
    tables = Tables()
    cache = CountsCache(tables.read)
    cache.keep_only(["2026-12"])
    first, second = Catalogue(), Catalogue()
    assert cache.counts("T01", "2026-12", first)["catalogue"] == id(first)
    assert cache.counts("T01", "2026-12", second)["catalogue"] == id(second)
    cache.counts("T01", "2026-12", second)
    assert tables.reads == 2
    cache.clear()
    cache.counts("T01", "2026-12", second)
    assert tables.reads == 3


@pytest.mark.parametrize(("interval", "took", "expected"), [
    (1.0, 0.01, 1.0),  # a quick tick: the configured interval
    (1.0, 0.2, 0.2 * (1 / PERIODIC_SHARE - 1)),  # a long one: at most its share of the time
    (1.0, 5.0, PERIODIC_MAX_DELAY_S),  # never past the freshness bound
    (5.0, 0.01, 5.0),  # a configured interval above the bound is kept
])
def test_the_next_round_waits_in_proportion_to_the_last(interval: float, took: float, expected: float) -> None:
    assert periodic_delay(interval, took) == pytest.approx(expected)
