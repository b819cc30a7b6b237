"""The calibrated simulator alone (no broker): its events, classified by the domain core, give
the published EMC figures (tests/support/published_figures.py), whatever the noise; and the same seed
gives the same bytes."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import orjson
import pytest

from streams.domain.catalogue import Catalogue
from streams.domain.events import parse_event
from streams.domain.indicators import indicators
from streams.domain.instants import local_date_of_us
from streams.domain.registry import Registry
from streams.errors import ConfigError, InvalidEvent
from streams.simulation.calibration import Calibration, plan
from streams.simulation.profile import ProfileConfig, ProfileSimulation, day_weight
from streams.simulation.simulator import SimulationConfig, simulate
from tests.support.oracle import batch_counts
from tests.support.published_figures import (
    PUBLISHED_2024,
    PUBLISHED_2025_04,
    PUBLISHED_2025_04_NATIONAL_PORTAL,
    PUBLISHED_2025_04_PROCEDURES,
    PUBLISHED_2025_Q1_TOP,
)

REGISTRY = Registry.load()

NOISY = dict(duplicate_share=0.05, correction_share=0.05, void_share=0.02, late_share=0.05, bad_share=0.01)


class Classified:
    """Messages of a run, dead letters sorted out as a worker would, and the batch counts."""

    def __init__(self, sim: ProfileSimulation) -> None:
        self.valid = []
        self.dead: Counter[str] = Counter()
        self.digest = hashlib.sha256()
        for message in sim.messages():
            self.digest.update((message.key or b"") + b"\0" + message.value + b"\n")
            try:
                event = parse_event(message.value, message.key)
            except InvalidEvent as exc:
                self.dead[exc.reason] += 1
                continue
            if event.agency_code not in REGISTRY:
                self.dead["unknown_agency"] += 1
                continue
            self.valid.append(event)
        self.counts = batch_counts(self.valid)

    def rates(self, period: str) -> dict[str, tuple[int, int]]:
        """agency -> (full_online, resolved) in the period, for agencies that resolved something."""
        return {agency: (row.get("full_online", 0), row["resolved"])
                for (agency, p), row in self.counts.items() if p == period and row.get("resolved")}

    def block(self, period: str, block: str | None = None) -> float:
        chosen = [v for a, v in self.rates(period).items() if block is None or REGISTRY.get(a).block == block]
        return 100 * sum(f for f, _ in chosen) / sum(n for _, n in chosen)

    def ranking(self, period: str, block: str) -> list[str]:
        rates = self.rates(period)
        return sorted((a for a in rates if REGISTRY.get(a).block == block), key=lambda a: -rates[a][0] / rates[a][1])


@lru_cache(maxsize=None)
def run(profile: str, period: str | None = None, seed: int = 7, lean: bool = False) -> tuple[ProfileSimulation, Classified]:
    config = ProfileConfig(profile=profile, period=period, scale=0.0002, seed=seed, min_resolved_published=200,
                           min_resolved=40, heartbeat_every=timedelta(days=7), lean=lean, **NOISY)
    sim = ProfileSimulation(config, REGISTRY)
    return sim, Classified(sim)


@pytest.mark.parametrize("lean", [False, True])
def test_2024_profile_gives_the_published_2024_figures(lean: bool) -> None:
    sim, out = run("2024", lean=lean)
    rates = out.rates("2024")
    pct = {a: 100 * f / n for a, (f, n) in rates.items()}
    # Exact: every agency's counts are the plan's, through duplicates, corrections, voids, late events.
    assert {a: v for a, v in rates.items()} == {u.code: (u.full_online, u.resolved) for u in sim.plan.units}
    assert out.ranking("2024", "province")[:10] == PUBLISHED_2024["province_top10"]
    assert out.ranking("2024", "ministry")[:10] == PUBLISHED_2024["ministry_top10"]
    for code, published in {**PUBLISHED_2024["province_rates"], **PUBLISHED_2024["ministry_rates"]}.items():
        assert abs(pct[code] - published) < 0.5, (code, pct[code], published)
    assert {a for a, r in pct.items() if r < 10} == PUBLISHED_2024["under10"]["ministry"] | PUBLISHED_2024["under10"]["province"]
    assert abs(out.block("2024") - PUBLISHED_2024["national"]) < 0.5
    assert abs(out.block("2024", "ministry") - PUBLISHED_2024["ministry"]) < 0.5
    assert abs(out.block("2024", "province") - PUBLISHED_2024["province"]) < 0.5
    # Every resolution falls in 2024 (local time): no other year has any.
    assert all(not row.get("resolved") for (_, period), row in out.counts.items() if len(period) == 4 and period != "2024")
    # Eight units valid in 2024 send nothing at all, heartbeats included.
    senders = {e.agency_code for e in out.valid}
    valid_2024 = {a.code for a in REGISTRY.valid_on(date(2024, 6, 1))}
    assert len(valid_2024 - senders) == PUBLISHED_2024["silent"]
    # Bad messages of every kind go to the dead letters.
    assert set(out.dead) == {"not_json", "schema", "unknown_agency", "key_mismatch"}


def test_each_month_of_the_2024_year_is_exactly_its_plan() -> None:
    """The month plans (tests/unit/simulation/test_month_split.py checks their rates) are what
    the year's traffic gives each month, through the noise."""
    sim, out = run("2024", lean=False)
    for month in ((2024, 4), (2024, 12)):
        planned = sim.month_plan(month)
        assert out.rates(f"{month[0]}-{month[1]:02d}") == {u.code: (u.full_online, u.resolved) for u in planned.units}
        assert len(planned.units) > 60


def test_2024_hue_is_disconnected_for_its_maintenance_stretch() -> None:
    sim, out = run("2024", lean=False)
    stretch = next(m for m in sim.calibration.maintenance if m.agency == "T46")
    hue_days = {local_date_of_us(e.occurred_at_us) for e in out.valid if e.agency_code == "T46" and e.type in ("heartbeat", "result_returned", "rejected")}
    assert hue_days and not any(stretch.covers(day) for day in hue_days)
    assert any(day == stretch.first_day - timedelta(days=1) or day < stretch.first_day for day in hue_days)


def test_2024_traffic_has_office_hours_weekly_rhythm_and_the_tet_dip() -> None:
    _, out = run("2024", lean=False)
    resolutions = [e.occurred_at_us for e in out.valid if e.type in ("result_returned", "rejected")]
    local = [datetime.fromtimestamp(us / 1e6, timezone(timedelta(hours=7))) for us in resolutions]
    by_weekday = Counter(t.weekday() for t in local)
    assert by_weekday[2] > 3 * by_weekday[5] > 3 * by_weekday[6] > 0
    office = sum(1 for t in local if 7 <= t.hour < 17)
    assert office / len(local) > 0.85
    by_day = Counter(t.date() for t in local)
    tet = [by_day[date(2024, 2, d)] for d in range(8, 15)]
    march_weekdays = [by_day[date(2024, 3, d)] for d in range(4, 9)]
    assert sum(tet) / len(tet) < 0.1 * sum(march_weekdays) / len(march_weekdays)
    assert day_weight(date(2024, 2, 10)) < day_weight(date(2024, 2, 11) + timedelta(days=30))


def test_2025_profile_gives_the_published_april_2025_rates() -> None:
    _, out = run("2025", "2025-04")
    assert abs(out.block("2025-04") - PUBLISHED_2025_04["national"]) < 0.5
    assert abs(out.block("2025-04", "ministry") - PUBLISHED_2025_04["ministry"]) < 0.5
    assert abs(out.block("2025-04", "province") - PUBLISHED_2025_04["province"]) < 0.5
    # In April 2025 the ministries are the reorganised ones (2025-03-01), the provinces the 63.
    senders = {e.agency_code for e in out.valid}
    assert "BNNMT" in senders and "BNNPTNT" not in senders and "T35" in senders


def test_2025_profile_gives_the_published_q1_2025_province_order() -> None:
    _, out = run("2025", "2025-Q1")
    assert out.ranking("2025-Q1", "province")[:10] == PUBLISHED_2025_Q1_TOP
    # Before 2025-03-01 a new ministry's traffic is sent by its predecessor.
    march = 1_740_762_000_000_000  # 2025-03-01T00:00:00+07:00
    senders = {e.agency_code for e in out.valid if e.occurred_at_us < march and e.type in ("result_returned", "rejected", "heartbeat")}
    assert "BNNMT" not in senders and "BNNPTNT" in senders


def test_2025_profile_after_the_mergers_sends_from_the_merged_provinces() -> None:
    _, out = run("2025", "2025-07")
    senders = {e.agency_code for e in out.valid}
    assert "T35" not in senders and "T37-2025" in senders
    assert senders <= {a.code for a in REGISTRY.valid_on(date(2025, 7, 15))}
    # The three provinces of the new Ninh Bình (Hà Nam, Nam Định, Ninh Bình) send under one code.
    rates = out.rates("2025-07")
    sim, _ = run("2025", "2025-04")
    april = sim.plan.by_code()
    assert rates["T37-2025"][1] > max(april[c].resolved for c in ("T35", "T36", "T37"))


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = dict(profile="2024", period="2024-03", scale=0.0001, min_resolved_published=20, min_resolved=5, **NOISY)
    first = Classified(ProfileSimulation(ProfileConfig(seed=3, **config), REGISTRY)).digest.hexdigest()
    again = Classified(ProfileSimulation(ProfileConfig(seed=3, **config), REGISTRY)).digest.hexdigest()
    other = Classified(ProfileSimulation(ProfileConfig(seed=4, **config), REGISTRY)).digest.hexdigest()
    assert first == again != other


def test_messages_come_in_emission_order() -> None:
    sim = ProfileSimulation(ProfileConfig(profile="2024", period="2024-Q1", scale=0.0001, min_resolved_published=30,
                                          min_resolved=10), REGISTRY)
    times = [m.at_us for m in sim.messages()]
    assert times == sorted(times) and len(times) > 1000


@pytest.mark.parametrize("profile", ["2024", "2025"])
def test_the_calibration_table_gives_the_published_block_rates_at_full_scale(profile: str) -> None:
    calibration = Calibration.load(profile, REGISTRY)
    reference = calibration.reference_period
    full = plan(calibration, (reference.last_day - reference.first_day).days + 1, 1.0, 0, 0)
    published = PUBLISHED_2024 if profile == "2024" else PUBLISHED_2025_04
    assert abs(100 * full.rate() - published["national"]) < 0.01
    for block in ("ministry", "province"):
        assert abs(100 * full.rate(block) - published[block]) < 0.01
    if profile == "2024":
        hanam = full.by_code()["T35"]
        assert (hanam.full_online, hanam.resolved) == (115_665, 168_746)
    assert calibration.sources and all(s["figures"] for s in calibration.sources)


def test_bad_profile_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Calibration.load("2023", REGISTRY)
    with pytest.raises(ConfigError):
        ProfileSimulation(ProfileConfig(profile="2024", period="2024-13"), REGISTRY)
    with pytest.raises(ConfigError):
        ProfileConfig(duplicate_share=1.5)


def test_the_simple_simulator_heartbeats_are_sparse() -> None:
    config = SimulationConfig(agencies=["T01", "BCT"], dossiers=50, start=datetime(2025, 1, 1, tzinfo=timezone.utc),
                              end=datetime(2025, 1, 31, tzinfo=timezone.utc), bad_share=0.0)
    kinds = Counter(b'"heartbeat"' in m.value for m in simulate(config))
    assert kinds[True] == 2 * 30
    assert kinds[False] > kinds[True]
    assert not [m for m in simulate(SimulationConfig(agencies=["T01"], dossiers=5, heartbeat_every=None)) if b'"heartbeat"' in m.value]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_simple_simulator_dates_no_event_after_its_window(seed: int) -> None:
    # A lifecycle lasts at most about 23 days, so every one fits in this window.
    start, end = datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 4, 1, tzinfo=timezone.utc)
    config = SimulationConfig(agencies=["T01", "BCT"], dossiers=400, start=start, end=end, seed=seed, bad_share=0.0)
    occurred = [orjson.loads(m.value)["occurred_at"] for m in simulate(config)]
    moments = [datetime.fromisoformat(text.replace("Z", "+00:00")) for text in occurred]
    assert len(moments) > 400
    assert max(moments) < end
    assert min(moments) >= start - timedelta(seconds=2)  # midnight dossiers may start just before


def test_a_profile_window_ending_now_dates_no_event_in_the_future() -> None:
    """`emc local --month now`: voids follow their dossier by up to ten days, but not past now."""
    now = datetime.now(timezone.utc)
    config = ProfileConfig(profile="2025", start=now - timedelta(days=6), end=now, scale=0.0001, min_resolved_published=20,
                           min_resolved=10, void_share=0.2, bad_share=0.0, seed=5)
    events = [orjson.loads(m.value) for m in ProfileSimulation(config, REGISTRY).messages()]
    moments = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in events]
    assert sum(e["type"] == "voided" for e in events) > 50
    assert max(moments) <= now


def _april_2025_figures(sim: ProfileSimulation, out: Classified) -> dict[str, dict[str, int]]:
    """scope -> summed April 2025 counts of the batch computation under the simulated catalogue."""
    counts = batch_counts(out.valid, Catalogue.of(sim.catalogue()))
    scopes: dict[str, dict[str, int]] = {"national": {}, "ministry": {}, "province": {}}
    for (agency, period), row in counts.items():
        if period == "2025-04":
            for scope in ("national", REGISTRY.get(agency).block):
                for name, n in row.items():
                    scopes[scope][name] = scopes[scope].get(name, 0) + n
    return scopes


@pytest.mark.parametrize("lean", [False, True])
def test_2025_profile_gives_the_published_april_2025_procedure_indicators_and_portal(lean: bool) -> None:
    sim, out = run("2025", "2025-04", lean=lean)
    scopes = _april_2025_figures(sim, out)
    for scope, counts in scopes.items():
        found = indicators(counts)
        for name, published in PUBLISHED_2025_04_PROCEDURES.items():
            assert abs(100 * found[name] - published[scope]) < 1.0, (scope, name, found[name])
        # Exactly the plan: each procedure the plan uses received a dossier in April (and the
        # full-online ones an online dossier), and no other procedure did.
        block = None if scope == "national" else scope
        planned = sim.procedures.totals((2025, 4), block)
        assert {k: counts.get(k, 0) for k in planned} == planned
        assert counts.get("procedures_not_in_catalogue", 0) == 0
    # The national portal: 1.6 million at scale 1, scaled down.
    assert scopes["national"]["received_national_portal"] == round(PUBLISHED_2025_04_NATIONAL_PORTAL * sim.config.scale)
    # Portals are on online receipts only.
    portals = Counter((e.channel, e.portal) for e in out.valid if e.type == "received")
    assert portals[("online", "national")] and portals[("online", "agency")]
    assert not [key for key in portals if key[0] != "online" and key[1] is not None]


def test_2025_catalogue_covers_every_sender_and_levels() -> None:
    sim, out = run("2025", "2025-07")
    catalogue = sim.catalogue()
    agencies = {p.agency_code for p in catalogue}
    # After the mergers the merged provinces send: their catalogue holds their predecessors' procedures.
    assert {e.agency_code for e in out.valid} <= agencies
    assert {p.levels[0].level for p in catalogue} == {"full_online", "partial_online", "not_online"}
    merged = [p for p in catalogue if p.agency_code == "T37-2025"]
    assert merged and all(p.levels[0].valid_from == REGISTRY.get("T37-2025").valid_from for p in merged)
    counts = batch_counts(out.valid, Catalogue.of(catalogue))
    assert not any(row.get("procedures_not_in_catalogue") for (_, period), row in counts.items() if period == "2025-07")


def test_the_2025_procedure_plan_gives_the_published_rates_at_full_scale() -> None:
    sim = ProfileSimulation(ProfileConfig(profile="2025", period="2025-04", scale=1.0), REGISTRY)
    for block, scope in ((None, "national"), ("ministry", "ministry"), ("province", "province")):
        totals = sim.procedures.totals((2025, 4), block)
        one = 100 * totals["full_online_procedures_in_force"] / totals["procedures_in_force"]
        two = 100 * totals["full_online_procedures_with_online_dossiers"] / totals["procedures_with_dossiers"]
        assert abs(one - PUBLISHED_2025_04_PROCEDURES["full_online_procedures"][scope]) < 0.05, (scope, one)
        assert abs(two - PUBLISHED_2025_04_PROCEDURES["full_online_procedures_used"][scope]) < 0.05, (scope, two)
    assert sim.procedures.totals((2025, 4))["received_national_portal"] == PUBLISHED_2025_04_NATIONAL_PORTAL
    # A province has a catalogue of the size of a real one (about 2,000 procedures), a ministry a few hundred.
    sizes = {code: len(u.full) + len(u.other) for code, u in sim.procedures.units.items()}
    assert 1500 <= sizes["T01"] <= 2100 and 100 <= sizes["BTC"] <= 400


def test_the_2024_profile_has_no_catalogue_and_no_portals() -> None:
    sim, out = run("2024")
    assert sim.procedures is None and sim.catalogue() == []
    assert not [e for e in out.valid if e.portal is not None]


def test_2025_same_seed_same_bytes_on_every_pass() -> None:
    sim = ProfileSimulation(ProfileConfig(profile="2025", period="2025-04", scale=0.00005, min_resolved=10, lean=True), REGISTRY)
    first = [(m.key, m.value) for m in sim.messages()]
    assert first == [(m.key, m.value) for m in sim.messages()]  # the procedure draws start afresh
    assert sim.catalogue() == sim.catalogue()
