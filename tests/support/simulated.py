"""Simulated traffic as the state stage receives it: valid events with their source positions."""

from __future__ import annotations

from datetime import UTC, datetime

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


FAULTY_AGENCIES = ("T01", "T35", "BCT")


def faulty_stream(seed: int, dossiers: int = 150) -> list[SourcedEvent]:
    """Three agencies' dossiers around a new year, with many duplicates, corrections, voids, late
    events and bad messages: the stream the exactness tests replay and cut."""
    return sourced_events(SimulationConfig(
        agencies=FAULTY_AGENCIES, dossiers=dossiers, seed=seed,
        start=datetime(2024, 12, 20, tzinfo=UTC), end=datetime(2025, 1, 10, tzinfo=UTC),
        duplicate_share=0.15, correction_share=0.1, void_share=0.05, late_share=0.2, bad_share=0.02,
    ))
