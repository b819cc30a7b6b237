"""Simulated traffic as the state stage receives it: valid events with their source positions."""

from __future__ import annotations

from streams.domain.events import parse_event
from streams.errors import InvalidEvent
from streams.simulation.simulator import SimulationConfig, simulate
from streams.worker.codec import SourcedEvent


def sourced_events(config: SimulationConfig) -> list[SourcedEvent]:
    """The simulation's messages as one source partition: each valid event at its offset (the
    bad messages take an offset too, as dead letters do, and are left out)."""
    events = []
    for offset, message in enumerate(simulate(config)):
        try:
            events.append(SourcedEvent(0, offset, parse_event(message.value, message.key)))
        except InvalidEvent:
            continue
    return events
