"""Deterministic traffic of dossier lifecycles, with the faults real producers make.

Two generators, both giving the same bytes for the same seed:

- `simulate(SimulationConfig)` (here): a simple, uncalibrated one for tests of exactness: each
  agency gets a propensity to work fully online, each dossier a random lifecycle.
- `ProfileSimulation(ProfileConfig)` (`streams/simulation/profile.py`; `emc simulate`,
  `emc local`): national traffic calibrated on the published EMC figures.

On top of both: duplicates (the same bytes again), corrections (`supersedes`), voids, late
events (emitted long after they occurred), and bad messages (dead letters). None of them
changes the counts the lifecycles were built for.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson

from streams.domain.instants import US_PER_DAY, US_PER_HOUR, VN_OFFSET_US, us_of, us_to_rfc3339


@dataclass(frozen=True, slots=True)
class SimMessage:
    key: bytes | None
    value: bytes
    at_us: int = 0  # when the message is emitted on the simulated clock (µs since the epoch)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    agencies: Sequence[str]
    dossiers: int = 1000
    start: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc)
    end: datetime = datetime(2025, 2, 1, tzinfo=timezone.utc)
    seed: int = 1
    duplicate_share: float = 0.05
    correction_share: float = 0.03
    void_share: float = 0.01
    late_share: float = 0.05
    bad_share: float = 0.01
    midnight_share: float = 0.0  # dossiers that start within seconds of local midnight
    heartbeat_every: timedelta | None = timedelta(days=1)  # None: no heartbeats
    online_propensity: dict[str, float] = field(default_factory=dict)  # agency -> P(full online)

    def __post_init__(self) -> None:
        if not self.agencies:
            raise ValueError("no agencies to simulate")
        if self.end <= self.start or self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be aware datetimes with start < end")


class _Lifecycle:
    def __init__(self, rng: random.Random, agency: str, dossier_id: str, start_us: int, online_p: float) -> None:
        self.rng = rng
        self.agency = agency
        self.dossier_id = dossier_id
        self.t = start_us
        self.online_p = online_p
        self.events: list[dict] = []
        self._n = 0

    def _event(self, kind: str, **fields: object) -> dict:
        self._n += 1
        event = {
            "schema": "emc.dossier-event.v1",
            "event_id": f"{self.dossier_id}-{self._n}",
            "agency_code": self.agency,
            "dossier_id": self.dossier_id,
            "type": kind,
            "occurred_at": us_to_rfc3339(self.t),
            **fields,
        }
        self.events.append(event)
        return event

    def _advance(self, max_hours: float) -> None:
        self.t += int(self.rng.uniform(0.05, max_hours) * 3_600_000_000)

    def build(self) -> list[dict]:
        rng = self.rng
        wants_online = rng.random() < self.online_p
        channel = "online" if wants_online or rng.random() < 0.3 else rng.choice(["in_person", "in_person", "postal"])
        procedure = f"1.{rng.randint(1000, 9999)}"
        if rng.random() < 0.2:
            self._event("submitted", procedure_code=procedure, channel=channel)
            self._advance(6)
        due_at = self.t + rng.choice([3, 5, 7, 10, 15]) * 86_400_000_000
        self._event("received", procedure_code=procedure, channel=channel, digitized=rng.random() < 0.6,
                    due_at=us_to_rfc3339(due_at))
        if rng.random() < 0.7:
            self._advance(24)
            method = "online" if wants_online else rng.choice(["online", "in_person"])
            self._event("fee_paid", method=method, amount_vnd=rng.choice([0, 20_000, 50_000, 100_000, 300_000]))
        if rng.random() < 0.15:
            self._advance(48)
            self._event("supplement_requested")
            self._advance(72)
            self._event("supplement_received", in_person=(not wants_online) and rng.random() < 0.5)
        self._advance(24 * rng.choice([1, 2, 4, 8, 16]))
        ending = rng.random()
        if ending < 0.82:
            electronic = rng.random() < 0.7
            self._event("result_issued", electronic=electronic)
            self._advance(12)
            delivery = rng.choice(["online", "public_postal"]) if wants_online else rng.choice(["in_person", "public_postal", "online"])
            self._event("result_returned", delivery=delivery)
        elif ending < 0.92:
            self._event("rejected")
        elif ending < 0.97:
            self._event("withdrawn")
        return self.events


def simulate(config: SimulationConfig) -> Iterator[SimMessage]:
    """Messages in emission order: mostly by time, with late, duplicated and bad ones mixed in."""
    rng = random.Random(config.seed)
    start_us, end_us = us_of(config.start), us_of(config.end)
    span = end_us - start_us
    timeline: list[tuple[int, int, dict]] = []  # (emit time, tie-breaker, event)
    for number in range(config.dossiers):
        agency = config.agencies[rng.randrange(len(config.agencies))]
        online_p = config.online_propensity.get(agency, 0.5)
        begins_us = start_us + rng.randrange(span)
        if rng.random() < config.midnight_share:
            # Local midnight is 17:00:00Z; land within two seconds either side of it.
            midnight = (begins_us + VN_OFFSET_US) // US_PER_DAY * US_PER_DAY - VN_OFFSET_US
            begins_us = midnight + rng.randrange(-2_000_000, 2_000_000)
        # A lifecycle gets its own generator so that it can be rebuilt earlier, with the same
        # steps, when it would run past `end`: no event may be dated after the window.
        life_seed = rng.getrandbits(64)
        dossier_id = f"{agency}-D{config.seed}-{number:07d}"
        life = _Lifecycle(random.Random(life_seed), agency, dossier_id, begins_us, online_p)
        events = life.build()
        overshoot_us = life.t - (end_us - 1)
        if overshoot_us > 0:
            life = _Lifecycle(random.Random(life_seed), agency, dossier_id, max(start_us, begins_us - overshoot_us), online_p)
            events = life.build()
        if events and rng.random() < config.correction_share:
            # Correct one event: the correction replaces it with other content.
            wrong = rng.choice(events)
            fixed = dict(wrong, event_id=f"{wrong['event_id']}-fix", supersedes=wrong["event_id"])
            if fixed["type"] == "received":
                fixed["channel"] = rng.choice(["online", "in_person", "postal"])
            events.append(fixed)
        if events and rng.random() < config.void_share:
            events.append(dict(events[-1], event_id=f"{life.dossier_id}-void", type="voided"))
            events[-1].pop("supersedes", None)
        for event in events:
            occurred = _event_us(event)
            emit = occurred
            if rng.random() < config.late_share:
                emit = occurred + rng.randrange(1, 30) * US_PER_DAY
            timeline.append((emit, len(timeline), event))
            if rng.random() < config.duplicate_share:
                timeline.append((emit + rng.randrange(1, US_PER_HOUR), len(timeline), event))
    step = config.heartbeat_every // timedelta(microseconds=1) if config.heartbeat_every else 0
    for agency in sorted(set(config.agencies)) if step else ():
        for t in range(start_us, end_us, step):
            heartbeat = {"schema": "emc.dossier-event.v1", "event_id": f"{agency}-hb-{t}", "agency_code": agency,
                         "type": "heartbeat", "occurred_at": us_to_rfc3339(t)}
            timeline.append((t, len(timeline), heartbeat))
    timeline.sort(key=lambda item: (item[0], item[1]))
    for emit, _, event in timeline:
        if rng.random() < config.bad_share:
            bad = _bad_message(rng, event)
            yield SimMessage(bad.key, bad.value, emit)
        yield SimMessage(event["agency_code"].encode(), orjson.dumps(event), emit)


def _event_us(event: dict) -> int:
    moment = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    return us_of(moment)


def _bad_message(rng: random.Random, event: dict) -> SimMessage:
    kind = rng.randrange(5)
    key = event["agency_code"].encode()
    if kind == 0:
        return SimMessage(key, b"{not json")
    if kind == 1:
        return SimMessage(key, orjson.dumps(dict(event, event_id="")))
    if kind == 2:
        return SimMessage(b"NOPE", orjson.dumps(dict(event, agency_code="NOPE", event_id=event["event_id"] + "-x")))
    if kind == 3:
        return SimMessage(b"OTHER", orjson.dumps(dict(event, event_id=event["event_id"] + "-k")))
    return SimMessage(key, b"\xff\xfe" + orjson.dumps(event))
