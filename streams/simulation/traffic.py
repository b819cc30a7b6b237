"""Sending simulated traffic: pacing the messages out, and declaring the calibration's
maintenance windows on the control topic (what `emc simulate` and `emc local` do)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from streams.settings import Settings
from streams.simulation.pacing import Pacer, Progress
from streams.simulation.profile import ProfileSimulation
from streams.simulation.simulator import SimMessage


def declare_maintenance(settings: Settings, simulation: ProfileSimulation) -> None:
    """Declare the calibration's maintenance stretches of the window on the control topic
    (idempotent: a window's key is its agency and start, so a rerun rewrites the same record)."""
    from streams.domain.control import encode_record
    from streams.kafka.control import send_control_messages

    windows = simulation.maintenance_windows()
    if windows:
        send_control_messages(settings, [encode_record(w) for w in windows])
        for w in windows:
            print(f"  control  {settings.control_topic}: maintenance of {w.agency} declared, {w.start} until {w.until}"
                  f" ({w.reason})", file=sys.stderr)


def pump(messages: Iterable[SimMessage], pacer: Pacer, progress: Progress | None,
         send: Callable[[SimMessage], object], tick: Callable[[int, int], None] | None = None) -> int:
    """Send every message at its pace; `tick(count, at_us)` after each one (for live summaries)."""
    count, at = 0, 0
    for message in messages:
        pacer.wait(message.at_us)
        send(message)
        count, at = count + 1, message.at_us
        if progress is not None:
            progress.update(count, at)
        if tick is not None:
            tick(count, at)
    if progress is not None:
        progress.close(count, at)
    return count
