"""The snapshot tick's cache of the current periods' counts, and its duty cycle."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.domain.catalogue import Catalogue
from streams.worker.app import PERIODIC_MAX_DELAY_S, PERIODIC_SHARE, CpuTimed, periodic_delay
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


def _burn(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def _round(results: list[str]) -> str:
    _burn(0.05)
    await asyncio.sleep(0.2)  # waiting: another task burns the CPU meanwhile
    _burn(0.05)
    results.append("done")
    return "value"


def test_a_round_is_timed_by_its_own_cpu_not_by_what_runs_while_it_waits() -> None:
    async def main() -> tuple[str, float]:
        async def busy_neighbour() -> None:
            await asyncio.sleep(0.01)
            _burn(0.15)

        neighbour = asyncio.ensure_future(busy_neighbour())
        timed = CpuTimed(_round([]))
        value = await timed
        await neighbour
        return value, timed.cpu_s

    value, cpu_s = asyncio.run(main())
    assert value == "value"
    # Its own 0.1 s of CPU; with the neighbour's 0.15 s or the 0.2 s of sleep it would be at
    # least 0.25 s.
    assert 0.1 <= cpu_s < 0.15


def test_a_timed_round_can_be_cancelled_while_it_waits() -> None:
    async def main() -> list[str]:
        results: list[str] = []
        task = asyncio.ensure_future(_await(CpuTimed(_round(results))))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return results

    assert asyncio.run(main()) == []  # the second half never ran


async def _await(timed: CpuTimed) -> object:
    return await timed


def test_behind_is_a_backlog_of_batch_messages_or_of_input_events() -> None:
    from types import SimpleNamespace

    from streams.worker.app import BEHIND_BATCH_MESSAGES, _behind

    settings = SimpleNamespace(input_topic="in", batch_max_events=1000)

    def worker(state_lag: dict, consumer_lag: dict) -> object:
        return SimpleNamespace(settings=settings, state_lag=state_lag, consumer_lag=consumer_lag)

    assert not _behind(worker({}, {}))  # nothing measured yet
    assert not _behind(worker({0: 1, 1: 2, 2: 1, 3: 2}, {("in", 0): 400, ("in", 1): 500, ("batches", 0): 1}))  # a trickle
    assert _behind(worker({0: BEHIND_BATCH_MESSAGES, 3: 1}, {}))
    assert _behind(worker({}, {("in", 0): 600, ("in", 1): 400}))
    assert not _behind(worker({}, {("batches", 0): 5000}))  # the batch topic counts in messages, above
