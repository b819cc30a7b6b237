"""Pacing of `emc simulate` / `emc local` and the progress line, on a fake clock."""

from __future__ import annotations

import io

import pytest

from streams.errors import ConfigError
from streams.simulation.pacing import Pacer, Progress

S = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_caps_messages_per_second() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=10, clock=clock, sleep=clock.sleep)
    for _ in range(21):
        pacer.wait(0)
    assert clock.now == pytest.approx(102.0)


def test_speedup_follows_the_simulated_clock_clamped_to_the_window() -> None:
    clock = FakeClock()
    pacer = Pacer(speedup=3600, window=(1000 * S, 1000 * S + 86_400 * S), clock=clock, sleep=clock.sleep)
    pacer.wait(0)  # before the window: goes out at its start
    pacer.wait(1000 * S + 3600 * S)  # one simulated hour: one second
    assert clock.now == pytest.approx(101.0)
    pacer.wait(1000 * S + 10 * 86_400 * S)  # late, after the window: at its end
    assert clock.now == pytest.approx(124.0)


def test_rate_and_speedup_take_the_slower() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=1, speedup=1e9, clock=clock, sleep=clock.sleep)
    for i in range(5):
        pacer.wait(i * S)
    assert clock.now == pytest.approx(104.0)


def test_bad_pace_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Pacer(rate=0)
    with pytest.raises(ConfigError):
        Pacer(speedup=-1)


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    clock = FakeClock()
    tty = io.StringIO()
    bar = Progress(0, 100 * S, stream=tty, tty=True, clock=clock)
    clock.now += 1
    bar.update(500, 50 * S)
    bar.close(1000, 100 * S)
    assert tty.getvalue().startswith("\r[############............]  50%")
    assert tty.getvalue().endswith("100%  1970-01-01 07:01  1,000 messages  1,000/s\n")
    plain = io.StringIO()
    lines = Progress(0, 100 * S, stream=plain, tty=False, every_s=10, clock=clock)
    for i in range(30):
        clock.now += 1
        lines.update(i, i * S)
    assert len(plain.getvalue().splitlines()) == 3 and "\r" not in plain.getvalue()
