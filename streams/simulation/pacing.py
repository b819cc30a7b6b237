"""Publishing at a pace, with a progress bar: the clock side of `emc simulate` and `emc local`.

`Pacer` holds messages back so that at most `rate` go out per second and/or the simulated
clock runs `speedup` times faster than the wall clock. `Progress` draws a one-line text bar
on a terminal, or prints a plain line now and then when stderr is not one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from streams.domain.instants import US_PER_S, VN_FIXED_OFFSET, utc_datetime_of_us
from streams.errors import ConfigError


class Pacer:
    def __init__(self, rate: float | None = None, speedup: float | None = None, window: tuple[int, int] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        """`window` (µs): simulated times are clamped into it, so that the lead-up before it (dossiers
        received earlier) and late events after it go out at once rather than stretching the replay."""
        if rate is not None and rate <= 0:
            raise ConfigError("--rate must be positive")
        if speedup is not None and speedup <= 0:
            raise ConfigError("--speedup must be positive")
        self.rate, self.speedup, self.window = rate, speedup, window
        self._clock, self._sleep = clock, sleep
        self._started: float | None = None
        self._first_us: int | None = None
        self._sent = 0

    def wait(self, at_us: int) -> None:
        """Block until the next message (simulated time `at_us`) may go out."""
        now = self._clock()
        if self.window is not None:
            at_us = min(max(at_us, self.window[0]), self.window[1])
        if self._started is None:
            self._started, self._first_us = now, at_us
        due = self._started
        if self.rate is not None:
            due = max(due, self._started + self._sent / self.rate)
        if self.speedup is not None and self._first_us is not None:
            due = max(due, self._started + (at_us - self._first_us) / US_PER_S / self.speedup)
        if due > now:
            self._sleep(due - now)
        self._sent += 1


class Progress:
    """`[#######.........]  43%  2024-06-07  123,456 messages  1,850/s` on stderr."""

    def __init__(self, start_us: int, end_us: int, stream: TextIO | None = None, tty: bool | None = None,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s if every_s is not None else (0.2 if self.tty else 10.0)
        self.start_us, self.end_us = start_us, end_us
        self._clock = clock
        self._started = clock()
        self._last = -1e9
        self._drawn = False

    def update(self, count: int, at_us: int, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        span = max(self.end_us - self.start_us, 1)
        done = min(max((at_us - self.start_us) / span, 0.0), 1.0)
        width = 24
        bar = "#" * round(done * width) + "." * (width - round(done * width))
        day = utc_datetime_of_us(at_us).astimezone(VN_FIXED_OFFSET).strftime("%Y-%m-%d %H:%M")
        rate = count / max(now - self._started, 1e-9)
        line = f"[{bar}] {done:4.0%}  {day}  {count:,} messages  {rate:,.0f}/s"
        if self.tty:
            self.stream.write("\r" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, count: int, at_us: int) -> None:
        self.update(count, at_us, force=True)
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
