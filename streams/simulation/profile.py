"""Calibrated national traffic (`emc simulate --profile`, `emc local`): the published EMC
figures (`streams/simulation/calibration.py`) as exact fully-online quotas per agency, with an
office-hours and weekly rhythm with Tết, silent units, maintenance stretches and the 2025
mergers; with the faults real producers make on top (duplicates, corrections, voids, late events,
dead letters). Same seed, same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import orjson

from streams.domain.catalogue import Procedure
from streams.domain.control import Maintenance, make_maintenance
from streams.domain.events import SCHEMA_ID
from streams.domain.instants import US_PER_DAY, US_PER_HOUR, US_PER_S, VN_FIXED_OFFSET, us_of, us_to_rfc3339
from streams.domain.periods import parse_period
from streams.domain.registry import Registry
from streams.errors import ConfigError
from streams.simulation.calibration import Calibration, Plan, UnitPlan, even_split, plan, unit_phase
from streams.simulation.procedures import Month, MonthQuota, ProcedureDraw, ProcedurePlan, plan_procedures
from streams.simulation.simulator import SimMessage

# Tết holidays (public-service offices closed), approximate, by year.
_TET: dict[int, tuple[date, date]] = {
    2023: (date(2023, 1, 20), date(2023, 1, 26)),
    2024: (date(2024, 2, 8), date(2024, 2, 14)),
    2025: (date(2025, 1, 25), date(2025, 2, 2)),
    2026: (date(2026, 2, 14), date(2026, 2, 22)),
    2027: (date(2027, 2, 5), date(2027, 2, 11)),
}
_HOLIDAYS = {(1, 1), (4, 30), (5, 1), (9, 2)}
# Relative weight of each local hour for resolutions (officials at work: 7:30-11:30, 13:30-17:00)
# and for online submissions (citizens: evenings too).
_RESOLUTION_HOURS = (0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.1, 1.5, 4.0, 4.0, 4.0, 2.5, 0.3, 1.2, 4.0, 4.0,
                     3.5, 1.0, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)
_SUBMISSION_HOURS = (0.1, 0.05, 0.03, 0.03, 0.05, 0.2, 0.6, 1.5, 3.0, 3.5, 3.5, 2.5, 1.0, 1.5, 3.0, 3.0,
                     2.5, 1.5, 1.0, 1.3, 1.6, 1.4, 0.8, 0.3)
_PROCESSING_DAYS = ((0, 0.12), (1, 0.2), (2, 0.16), (3, 0.15), (5, 0.12), (7, 0.1), (10, 0.08), (15, 0.05), (20, 0.02))
_MAX_LOOKBACK_US = 27 * US_PER_DAY  # a lifecycle starts at most this long before its end
_FEES = (20_000, 50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000, 5_000_000)


def day_weight(day: date) -> float:
    """Relative share of a day's dossiers: working days, a little on Saturday morning, little on
    Sundays and public holidays, almost nothing during Tết, a rush in the week before it."""
    tet = _TET.get(day.year)
    if tet is not None and tet[0] <= day <= tet[1]:
        return 0.03
    if (day.month, day.day) in _HOLIDAYS:
        return 0.08
    weekday = day.weekday()
    if weekday == 6:
        return 0.05
    if weekday == 5:
        return 0.3
    if tet is not None and tet[0] - timedelta(days=8) <= day < tet[0]:
        return 1.25
    return 1.0


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    profile: str = "2024"
    period: str | None = None  # YYYY, YYYY-Qn or YYYY-MM; default: the profile's default period
    start: datetime | None = None  # or an explicit window [start, end) (aware datetimes)
    end: datetime | None = None
    scale: float = 0.001
    seed: int = 1
    min_resolved_published: int = 200  # floor for agencies with a published rate
    min_resolved: int = 100  # floor for the others
    duplicate_share: float = 0.02
    correction_share: float = 0.01
    void_share: float = 0.005
    late_share: float = 0.02
    bad_share: float = 0.001
    heartbeat_every: timedelta | None = timedelta(days=1)
    lean: bool = False  # only the events a dossier's classification needs (fast pipeline tests)

    def __post_init__(self) -> None:
        for name in ("duplicate_share", "correction_share", "void_share", "late_share", "bad_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name.replace('_share', '')} share must be between 0 and 1")
        if (self.start is None) != (self.end is None):
            raise ConfigError("give both start and end, or neither")
        if self.start is not None and (self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start):
            raise ConfigError("start and end must be aware datetimes with start < end")
        if self.heartbeat_every is not None and self.heartbeat_every <= timedelta(0):
            raise ConfigError("heartbeats must be at least a second apart")
        if self.min_resolved_published < 0 or self.min_resolved < 0:
            raise ConfigError("floors of resolved dossiers cannot be negative")


@dataclass(slots=True)
class _Dossier:
    """Events of one dossier under construction (dicts in occurred order)."""

    code: str
    dossier_id: str
    events: list[dict]


class ProfileSimulation:
    """Calibrated national traffic for one window: `plan` says what the counts will be,
    `messages()` yields the traffic in emission order (streamed month by month)."""

    def __init__(self, config: ProfileConfig, registry: Registry | None = None,
                 calibration: Calibration | None = None) -> None:
        self.config = config
        self.registry = registry or Registry.load()
        self.calibration = calibration or Calibration.load(config.profile, self.registry)
        if config.start is not None and config.end is not None:
            self.start_us, self.end_us = us_of(config.start), us_of(config.end)
        else:
            try:
                period = parse_period(config.period or self.calibration.default_period)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if period.window == "day":
                raise ConfigError("the period must be a year, quarter or month")
            self.start_us = _local_midnight_us(period.first_day)
            self.end_us = _local_midnight_us(period.last_day + timedelta(days=1))
        # Nothing is dated after it is made, nor after the window (a window ending "now" was
        # read from the clock before this one).
        self._now_us = min(us_of(datetime.now(timezone.utc)) // US_PER_S * US_PER_S, self.end_us)
        self._senders: dict[tuple[str, date], str | None] = {}
        self.days = self._window_days()
        units = [u.code for u in self.calibration.units if u.code not in self.calibration.silent]
        self._active_days = {code: [(d, w) for d, w in self.days if self._sends(code, d)] for code in units}
        active = [code for code in units if self._active_days[code]]
        window_days = sum(fraction for _, fraction in self._fractions())
        self.plan: Plan = plan(self.calibration, window_days, config.scale, config.min_resolved_published,
                               config.min_resolved, active)
        self._months = self._month_split()
        # Issue 14: a profile with published procedure indicators gets a catalogue and portals.
        self.procedures: ProcedurePlan | None = None
        if self.calibration.procedure_rates:
            self.procedures = plan_procedures(self.calibration, self._month_volumes(), self._month_days(), config.scale)
        self._draws: dict[tuple[str, Month], ProcedureDraw] = {}

    # -- the window ---------------------------------------------------------------------
    def _fractions(self) -> list[tuple[date, float]]:
        """Local days of the window with the fraction of each that lies inside it."""
        out = []
        day = datetime.fromtimestamp(self.start_us / US_PER_S, VN_FIXED_OFFSET).date()
        while True:
            begin = _local_midnight_us(day)
            if begin >= self.end_us:
                return out
            end = begin + US_PER_DAY
            inside = min(end, self.end_us) - max(begin, self.start_us)
            if inside > 0:
                out.append((day, inside / US_PER_DAY))
            day += timedelta(days=1)

    def maintenance_windows(self) -> list[Maintenance]:
        """The calibration's maintenance stretches that touch the simulated window, as the
        control records that declare them (whole Asia/Ho_Chi_Minh days; declared when they
        began), so that the workers list the unit in maintenance for those periods."""
        out = []
        for stretch in self.calibration.maintenance:
            start_us = _local_midnight_us(stretch.first_day)
            until_us = _local_midnight_us(stretch.last_day + timedelta(days=1))
            if start_us < self.end_us and self.start_us < until_us:
                start = datetime(stretch.first_day.year, stretch.first_day.month, stretch.first_day.day, tzinfo=VN_FIXED_OFFSET)
                until = start + timedelta(days=(stretch.last_day - stretch.first_day).days + 1)
                out.append(make_maintenance(self.registry, stretch.agency, start.isoformat(), until.isoformat(),
                                            stretch.reason, start.isoformat()))
        return out

    def _window_days(self) -> list[tuple[date, float]]:
        return [(day, day_weight(day) * fraction) for day, fraction in self._fractions()]

    def sender(self, unit: str, day: date) -> str | None:
        """The code that sends `unit`'s traffic on `day`: itself while valid, its successor after
        a merger, its first predecessor before it was formed; None when nobody does."""
        key = (unit, day)
        if key not in self._senders:
            agency = self.registry.get(unit)
            found: str | None = None
            if agency is not None and agency.is_valid_on(day):
                found = unit
            elif agency is not None and agency.valid_to is not None and day > agency.valid_to:
                successor = self.registry.final_successor(unit, on=day)
                found = successor if self.registry.get(successor).is_valid_on(day) else None  # type: ignore[union-attr]
            elif agency is not None:
                found = next((p for p in self.registry.predecessors(unit)
                              if self.registry.get(p).is_valid_on(day)), None)  # type: ignore[union-attr]
            self._senders[key] = found
        return self._senders[key]

    def _sends(self, unit: str, day: date) -> bool:
        if any(m.agency == unit and m.covers(day) for m in self.calibration.maintenance):
            return False
        return self.sender(unit, day) is not None

    def _month_split(self) -> dict[str, list[tuple[date, int, int]]]:
        """unit -> [(day, resolved, fully online)]: resolved dossiers spread over the unit's active
        days by day weight, the fully-online quota over months in proportion (both exact).

        Both splits round evenly (`even_split`), each unit with its own phase: a small unit has
        fewer dossiers than days, and a split whose ties go to the earliest days would pile them
        onto the start of a long window, so that a month of a whole-year run would not have the
        mix of units (nor the rates) of a run of that month alone."""
        split: dict[str, list[tuple[date, int, int]]] = {}
        for index, unit in enumerate(self.plan.units):
            phase = unit_phase(index)
            days = self._active_days[unit.code]
            per_day = even_split(unit.resolved, [w for _, w in days], phase)
            months: dict[tuple[int, int], int] = {}
            for (day, _), n in zip(days, per_day):
                months[(day.year, day.month)] = months.get((day.year, day.month), 0) + n
            month_keys = sorted(months)
            month_full = dict(zip(month_keys, even_split(unit.full_online, [months[k] for k in month_keys], phase)))
            rows = []
            for (day, _), n in zip(days, per_day):
                if n:
                    key = (day.year, day.month)
                    # the month's quota goes to its first days' rows; modes are shuffled within the month
                    take = min(n, month_full[key])
                    month_full[key] -= take
                    rows.append((day, n, take))
            split[unit.code] = rows
        return split

    def month_plan(self, month: Month) -> Plan:
        """The plan of one month of the window (year, month): each unit's resolved and
        fully-online dossiers in it (the same counts as the traffic of that month)."""
        units = []
        for unit in self.plan.units:
            rows = [(n, full) for day, n, full in self._months[unit.code] if (day.year, day.month) == month]
            if rows:
                units.append(UnitPlan(unit.code, unit.block, sum(n for n, _ in rows), sum(f for _, f in rows)))
        return Plan(tuple(units))

    def _month_volumes(self) -> dict[Month, dict[str, tuple[int, int]]]:
        """month -> unit -> (resolved dossiers, of which received online), as planned."""
        volumes: dict[Month, dict[str, tuple[int, int]]] = {}
        for code, rows in self._months.items():
            months: dict[Month, tuple[int, int]] = {}
            for day, n, full in rows:
                total, fulls = months.get((day.year, day.month), (0, 0))
                months[(day.year, day.month)] = (total + n, fulls + full)
            for month, (total, full) in months.items():
                partial, _ = self._mode_split(total, full)
                volumes.setdefault(month, {})[code] = (total, full + partial)
        return volumes

    def _month_days(self) -> dict[Month, float]:
        days: dict[Month, float] = {}
        for day, fraction in self._fractions():
            days[(day.year, day.month)] = days.get((day.year, day.month), 0.0) + fraction
        return days

    def _mode_split(self, total: int, full: int) -> tuple[int, int]:
        """(partial online, unclassified) among a unit-month's resolved dossiers."""
        shares = self.calibration.traffic
        rest = total - full
        partial = _round(shares.partial_share_of_rest * rest)
        return partial, min(rest - partial, _round(shares.unclassified_share * total))

    def catalogue(self) -> list[Procedure]:
        """The procedure catalogue of the window (empty for a profile without one): every unit's
        procedures under each code that sends its traffic."""
        if self.procedures is None:
            return []
        senders: dict[str, set[str]] = {}
        for unit in self.plan.units:
            for day, _ in self.days:
                code = self.sender(unit.code, day)
                if code is not None:
                    senders.setdefault(unit.code, set()).add(code)
        return self.procedures.records(self.registry, senders)

    # -- traffic --------------------------------------------------------------------------
    def messages(self) -> Iterator[SimMessage]:
        """Every message, in emission order. Deterministic for the config's seed."""
        self._draws = {}  # the procedures' coverage starts afresh with each pass
        pending: list[tuple[int, int, bytes, bytes]] = []  # (emit µs, serial, key, value)
        serial = 0
        months = sorted({(d.year, d.month) for d, _ in self.days})
        for year, month in months:
            month_start = max(_local_midnight_us(date(year, month, 1)), self.start_us)
            produced: list[tuple[int, bytes, bytes]] = []
            for unit in self.plan.units:
                rows = [r for r in self._months[unit.code] if (r[0].year, r[0].month) == (year, month)]
                if rows:
                    rng = random.Random(f"{self.config.seed}:{self.calibration.profile}:{unit.code}:{year}-{month:02d}")
                    produced.extend(self._unit_month(rng, unit.code, year, month, rows))
            produced.extend(self._heartbeats(year, month))
            noise = random.Random(f"{self.config.seed}:noise:{year}-{month:02d}")
            for emit, key, value in produced:
                for item in self._with_noise(noise, emit, key, value):
                    serial += 1
                    pending.append((item[0], serial, item[1], item[2]))
            # Nothing generated from the next month on happens before this month's start.
            pending.sort()
            cut = next((i for i, item in enumerate(pending) if item[0] >= month_start), len(pending))
            for emit, _, key, value in pending[:cut]:
                yield SimMessage(key, value, emit)
            del pending[:cut]
        for emit, _, key, value in pending:
            yield SimMessage(key, value, emit)

    def _unit_month(self, rng: random.Random, unit: str, year: int, month: int,
                    rows: list[tuple[date, int, int]]) -> Iterator[tuple[int, bytes, bytes]]:
        shares = self.calibration.traffic
        total = sum(n for _, n, _ in rows)
        full = sum(f for _, _, f in rows)
        rest = total - full
        partial, unclassified = self._mode_split(total, full)
        modes = (["full_online"] * full + ["partial_online"] * partial + ["unclassified"] * unclassified
                 + ["offline"] * (rest - partial - unclassified))
        rng.shuffle(modes)
        serial = 0
        index = 0
        for day, n, _ in rows:
            for _ in range(n):
                serial += 1
                resolved_at = self._time_on(rng, day, _RESOLUTION_HOURS)
                outcome = "rejected" if rng.random() < shares.rejected_share else "completed"
                yield from self._emit(rng, self._resolved_dossier(rng, unit, f"{year}{month:02d}-{serial:06d}",
                                                                  modes[index], outcome, resolved_at))
                index += 1
        # Dossiers that are not resolved in the window, or count nowhere.
        extras = (("withdrawn", shares.withdrawn_share), ("pending", shares.pending_share), ("voided", self.config.void_share))
        days = [d for d, _, _ in rows]
        for kind, share in extras:
            for _ in range(_round(share * total)):
                serial += 1
                day = rng.choice(days)
                at = self._time_on(rng, day, _RESOLUTION_HOURS)
                dossier_id = f"{year}{month:02d}-{serial:06d}"
                if kind == "voided":
                    dossier = self._resolved_dossier(rng, unit, dossier_id, rng.choice(["full_online", "offline"]), "completed", at,
                                                     counted=False)
                    last = dossier.events[-1]["_at"]
                    # Up to ten days later, but never in the future (a window ending now).
                    void_at = min(last + rng.randrange(US_PER_HOUR, 10 * US_PER_DAY), max(last + 1, self._now_us))
                    self._event(dossier, "voided", void_at)
                else:
                    dossier = self._open_dossier(rng, unit, dossier_id, at, withdrawn=kind == "withdrawn")
                yield from self._emit(rng, dossier)

    def _time_on(self, rng: random.Random, day: date, hours: Sequence[float]) -> int:
        """An instant of `day` (local) inside the window, drawn by the hour weights."""
        midnight = _local_midnight_us(day)
        lo, hi = max(midnight, self.start_us), min(midnight + US_PER_DAY, self.end_us)
        allowed = [h for h in range(24) if midnight + (h + 1) * US_PER_HOUR > lo and midnight + h * US_PER_HOUR < hi]
        hour = rng.choices(allowed, weights=[hours[h] for h in allowed])[0]
        begin = max(lo, midnight + hour * US_PER_HOUR)
        end = min(hi, midnight + (hour + 1) * US_PER_HOUR)
        return begin + rng.randrange(max(end - begin, 1)) // US_PER_S * US_PER_S

    def _sender_at(self, unit: str, at_us: int) -> str:
        day = datetime.fromtimestamp(at_us / US_PER_S, VN_FIXED_OFFSET).date()
        code = self.sender(unit, day)
        if code is None:  # pragma: no cover - only days where the unit sends are drawn
            raise ValueError(f"{unit} sends nothing on {day}")
        return code

    def _new_dossier(self, unit: str, dossier_id: str, end_us: int) -> _Dossier:
        code = self._sender_at(unit, end_us)
        return _Dossier(code, f"{self.calibration.profile}-{self.config.seed}-{unit}-{dossier_id}", [])

    def _event(self, dossier: _Dossier, kind: str, at_us: int, **fields: object) -> dict:
        event = {
            "schema": SCHEMA_ID,
            "event_id": f"{dossier.dossier_id}.{len(dossier.events) + 1}",
            "agency_code": dossier.code,
            "dossier_id": dossier.dossier_id,
            "type": kind,
            "occurred_at": us_to_rfc3339(at_us),
            "_at": at_us,
            **fields,
        }
        dossier.events.append(event)
        return event

    def _procedure(self, rng: random.Random, unit: str, received_us: int, end_us: int, online: bool,
                   counted: bool) -> tuple[str, dict[str, str]]:
        """The procedure code of a dossier received at `received_us`, and its portal field(s)."""
        if self.procedures is None:
            return f"{rng.choice((1, 2))}.{rng.randrange(0, 13000):06d}", {}
        catalogue = self.procedures.units[unit]
        month = _month_of(received_us)
        draw = self._draws.get((unit, month))
        if draw is None:
            # Received before the window, or in a month it plans nothing for: the quotas of the
            # month it is resolved in (a dossier received in a month is counted in that month).
            quota_month = month if catalogue.months.get(month, _NO_QUOTA).used else _month_of(end_us)
            draw = self._draws[(unit, month)] = ProcedureDraw(catalogue, quota_month)
        code, portal = draw.draw(rng, online, counted)
        return code, ({"portal": portal} if portal is not None else {})

    def _start(self, rng: random.Random, dossier: _Dossier, unit: str, end_us: int, channel: str | None,
               received: bool = True, counted: bool = True) -> int:
        """submitted / received events before `end_us`; returns the received time."""
        days = rng.choices([d for d, _ in _PROCESSING_DAYS], weights=[w for _, w in _PROCESSING_DAYS])[0]
        at = end_us - days * US_PER_DAY - rng.randrange(10 * 60 * US_PER_S, 8 * US_PER_HOUR)
        at = max(at, end_us - _MAX_LOOKBACK_US)
        at = at // US_PER_S * US_PER_S
        procedure, portal = self._procedure(rng, unit, at, end_us, channel == "online", counted)
        lean = self.config.lean
        if not received:
            self._event(dossier, "submitted", at, procedure_code=procedure)
            return at
        if channel == "online" and not lean and rng.random() < 0.25:
            self._event(dossier, "submitted", at - rng.randrange(US_PER_S, 12 * US_PER_HOUR) // US_PER_S * US_PER_S,
                        procedure_code=procedure, channel="online", **portal)
        fields: dict[str, object] = {"procedure_code": procedure, "channel": channel, **portal}
        if not lean:
            fields["digitized"] = rng.random() < (0.8 if channel == "online" else 0.45)
            fields["due_at"] = us_to_rfc3339(at + rng.choice((3, 5, 7, 10, 15, 20)) * US_PER_DAY)
        self._event(dossier, "received", at, **fields)
        return at

    def _fee(self, rng: random.Random) -> int:
        mean = self.calibration.traffic.mean_fee_vnd
        return min(_FEES, key=lambda fee: abs(fee - rng.expovariate(1 / mean)))

    def _resolved_dossier(self, rng: random.Random, unit: str, dossier_id: str, mode: str, outcome: str,
                          resolved_at: int, counted: bool = True) -> _Dossier:
        dossier = self._new_dossier(unit, dossier_id, resolved_at)
        lean = self.config.lean
        shares = self.calibration.traffic
        if mode == "unclassified":
            received_at = self._start(rng, dossier, unit, resolved_at, None, received=False, counted=counted)
        else:
            channel = "online" if mode in ("full_online", "partial_online") else rng.choice(("in_person", "in_person", "postal"))
            received_at = self._start(rng, dossier, unit, resolved_at, channel, counted=counted)
        span = max(resolved_at - received_at, 2)
        # The in-person step that makes an online dossier partial.
        steps = ["fee", "supplement"] + (["delivery"] if outcome == "completed" else [])
        step = None
        if mode == "partial_online":
            step = ("delivery" if outcome == "completed" else "fee") if lean else rng.choice(steps)
        offline = mode in ("offline", "unclassified")
        if step == "fee" or (not lean and rng.random() < shares.fee_share):
            method = "in_person" if step == "fee" else ("online" if mode != "offline" or rng.random() < 0.3 else "in_person")
            if mode == "partial_online" and step != "fee":
                method = rng.choice(("online", "in_person"))
            self._event(dossier, "fee_paid", received_at + rng.randrange(1, span), method=method,
                        amount_vnd=0 if lean else self._fee(rng))
        if step == "supplement" or (not lean and rng.random() < 0.08):
            asked = received_at + rng.randrange(1, span)
            self._event(dossier, "supplement_requested", asked)
            in_person = step == "supplement" or (offline and rng.random() < 0.6)
            self._event(dossier, "supplement_received", asked + rng.randrange(0, max(resolved_at - asked, 1)), in_person=in_person)
        if outcome == "rejected":
            self._event(dossier, "rejected", resolved_at)
            return dossier
        if not lean:
            electronic = rng.random() < (0.85 if mode == "full_online" else 0.35)
            self._event(dossier, "result_issued", max(received_at, resolved_at - rng.randrange(0, 2 * US_PER_DAY)) // US_PER_S * US_PER_S,
                        electronic=electronic)
        if step == "delivery":
            delivery = "in_person"
        elif mode == "full_online":
            delivery = "online" if rng.random() < 0.8 else "public_postal"
        else:
            delivery = rng.choice(("in_person", "in_person", "public_postal", "online"))
        self._event(dossier, "result_returned", resolved_at, delivery=delivery)
        return dossier

    def _open_dossier(self, rng: random.Random, unit: str, dossier_id: str, at: int, withdrawn: bool) -> _Dossier:
        """A dossier received but not resolved: withdrawn at `at`, or still pending at `at`."""
        dossier = self._new_dossier(unit, dossier_id, at)
        channel = rng.choice(("online", "online", "in_person", "postal"))
        received_at = self._start(rng, dossier, unit, at, channel)
        if not self.config.lean and rng.random() < self.calibration.traffic.fee_share:
            self._event(dossier, "fee_paid", received_at + rng.randrange(0, max(at - received_at, 1)),
                        method="online" if channel == "online" else "in_person", amount_vnd=self._fee(rng))
        if withdrawn:
            self._event(dossier, "withdrawn", at)
        return dossier

    def _emit(self, rng: random.Random, dossier: _Dossier) -> Iterator[tuple[int, bytes, bytes]]:
        """The dossier's events as (emit time, key, value), with a correction now and then: an
        intentionally wrong event first, then the right one superseding it."""
        events = dossier.events
        if rng.random() < self.config.correction_share:
            candidates = [e for e in events if e["type"] in ("received", "fee_paid", "result_returned")]
            if candidates:
                right = rng.choice(candidates)
                wrong = dict(right, event_id=right["event_id"] + "w")
                if right["type"] == "received":
                    wrong["channel"] = "in_person" if right["channel"] != "in_person" else "online"
                    wrong.pop("portal", None)  # a portal is where an online dossier was submitted
                elif right["type"] == "fee_paid":
                    wrong["method"] = "in_person" if right["method"] == "online" else "online"
                else:
                    wrong["delivery"] = "in_person" if right["delivery"] != "in_person" else "online"
                right["supersedes"] = wrong["event_id"]
                right["_emit"] = right["_at"] + rng.randrange(US_PER_S, 2 * US_PER_DAY)
                events.append(wrong)
        key = dossier.code.encode()
        for event in events:
            emit = event.pop("_emit", event["_at"])
            del event["_at"]
            yield emit, key, orjson.dumps(event)

    def _heartbeats(self, year: int, month: int) -> Iterator[tuple[int, bytes, bytes]]:
        every = self.config.heartbeat_every
        if every is None:
            return
        step = int(every.total_seconds() * US_PER_S)
        lo = max(_local_midnight_us(date(year, month, 1)), self.start_us)
        hi = min(_local_midnight_us(date(year + month // 12, month % 12 + 1, 1)), self.end_us)
        # Anchored at the window's end, so a window ending now ends with every sending unit's
        # heartbeat (none looks silent at the start of a live run), then one every `step` back.
        last = self.end_us - US_PER_S
        first = last - max(0, (last - lo) // step) * step
        for unit in self.plan.units:
            for t in range(first, hi, step):
                day = datetime.fromtimestamp(t / US_PER_S, VN_FIXED_OFFSET).date()
                if not self._sends(unit.code, day):
                    continue
                code = self.sender(unit.code, day)
                event = {"schema": SCHEMA_ID, "event_id": f"{code}-hb-{t // US_PER_S}", "agency_code": code,
                         "type": "heartbeat", "occurred_at": us_to_rfc3339(t)}
                yield t, code.encode(), orjson.dumps(event)  # type: ignore[union-attr]

    def _with_noise(self, rng: random.Random, emit: int, key: bytes, value: bytes) -> Iterator[tuple[int, bytes, bytes]]:
        config = self.config
        if rng.random() < config.late_share:
            emit += rng.randrange(US_PER_HOUR, 15 * US_PER_DAY)
        if rng.random() < config.bad_share:
            yield emit, *_dead_letter(rng, key, value)
        yield emit, key, value
        if rng.random() < config.duplicate_share:
            yield emit + rng.randrange(US_PER_S, 2 * US_PER_HOUR), key, value


def _dead_letter(rng: random.Random, key: bytes, value: bytes) -> tuple[bytes, bytes]:
    """A message the worker must dead-letter: not JSON, schema, unknown agency, key mismatch."""
    kind = rng.randrange(4)
    event = orjson.loads(value)
    if kind == 0:
        return key, value[: len(value) // 2]
    if kind == 1:
        return key, orjson.dumps(dict(event, event_id=""))
    if kind == 2:
        return b"ZZ99", orjson.dumps(dict(event, agency_code="ZZ99", event_id=event["event_id"] + "u"))
    other = b"T01" if key != b"T01" else b"BCT"
    return other, orjson.dumps(dict(event, event_id=event["event_id"] + "k"))


_NO_QUOTA = MonthQuota(0, 0, 0, 0)


def _month_of(epoch_us: int) -> Month:
    day = datetime.fromtimestamp(epoch_us / US_PER_S, VN_FIXED_OFFSET).date()
    return day.year, day.month


def _round(x: float) -> int:
    return int(x + 0.5)


def _local_midnight_us(day: date) -> int:
    return us_of(datetime(day.year, day.month, day.day, tzinfo=VN_FIXED_OFFSET))
