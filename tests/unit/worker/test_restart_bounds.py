"""The bounds after which a worker exits for its supervisor rather than live on masked
(issue 18 items 2 and 4): catch-ups in a row without a delivery, and a broker that does not answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.worker.health import CatchUpStreak, Unreachable


def test_a_partition_is_exhausted_after_the_limit_of_catch_ups_in_a_row() -> None:
    streak = CatchUpStreak(4)
    counts = [streak.caught_up(2) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert not streak.exhausted(2)
    assert streak.caught_up(2) == 4
    assert streak.exhausted(2)


def test_a_delivery_in_between_starts_the_streak_again() -> None:
    streak = CatchUpStreak(4)
    for _ in range(3):
        streak.caught_up(1)
    streak.delivered(1)
    assert streak.caught_up(1) == 1
    assert not streak.exhausted(1)


def test_partitions_are_counted_apart() -> None:
    streak = CatchUpStreak(2)
    streak.caught_up(0)
    streak.caught_up(1)
    streak.delivered(0)
    streak.caught_up(1)
    assert streak.exhausted(1)
    assert not streak.exhausted(0)


@given(st.lists(st.tuples(st.sampled_from(["catch_up", "delivered"]), st.integers(0, 3)), max_size=60))
def test_exhausted_means_limit_catch_ups_since_the_last_delivery(steps: list[tuple[str, int]]) -> None:
    limit = 3
    streak = CatchUpStreak(limit)
    for what, partition in steps:
        streak.caught_up(partition) if what == "catch_up" else streak.delivered(partition)
    for partition in range(4):
        since_delivery = 0
        for what, p in steps:
            if p == partition:
                since_delivery = since_delivery + 1 if what == "catch_up" else 0
        assert streak.exhausted(partition) == (since_delivery >= limit)


def test_unreachable_measures_from_the_first_failure_until_an_answer() -> None:
    unreachable = Unreachable()
    assert unreachable.failed(100.0) == 0.0
    assert unreachable.failed(106.5) == 6.5
    assert unreachable.failures == 2
    unreachable.answered()
    assert unreachable.since is None and unreachable.failures == 0
    assert unreachable.failed(200.0) == 0.0
