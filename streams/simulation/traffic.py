"""Sending simulated traffic: pacing the messages out, declaring the calibration's
maintenance windows on the control topic and publishing its procedure catalogue (what
`emc simulate` and `emc local` do)."""

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


def declare_catalogue(settings: Settings, simulation: ProfileSimulation) -> None:
    """Publish the window's procedure catalogue on the catalogue topic, when the profile has one
    (`--profile 2025`: indicators 1 and 2). Idempotent: each record is keyed by its procedure."""
    from streams.domain.catalogue import encode_procedure
    from streams.kafka.catalogue import send_catalogue

    procedures = simulation.catalogue()
    if procedures:
        send_catalogue(settings, [encode_procedure(p) for p in procedures], timeout_s=max(60.0, len(procedures) / 2000))
        print(f"  catalogue {settings.catalogue_topic}: {len(procedures):,} procedure records of "
              f"{len({p.agency_code for p in procedures})} agencies", file=sys.stderr)


def procedure_plan_lines(simulation: ProfileSimulation, month: str) -> list[str]:
    """What the profile plans for indicators 1 and 2 and the national portal in `month`
    (YYYY-MM), beside what the bulletin published; none for a profile without a catalogue."""
    plan, calibration = simulation.procedures, simulation.calibration
    if plan is None:
        return []
    key = (int(month[:4]), int(month[5:7]))
    if not any(key in unit.months for unit in plan.units.values()):
        return []  # the month is outside the window
    lines = []
    for name, numerator, denominator, title in (
            ("full_online_procedures", "full_online_procedures_in_force", "procedures_in_force", "1. full-online procedures"),
            ("full_online_procedures_used", "full_online_procedures_with_online_dossiers", "procedures_with_dossiers",
             "2. used full-online procedures")):
        rates = {}
        for block in (None, "ministry", "province"):
            totals = plan.totals(key, block)
            rates[block] = totals[numerator] / totals[denominator] if totals[denominator] else 0.0
        published = calibration.procedure_rates[name]
        lines.append(f"{title}: {rates[None]:.2%} (ministries {rates['ministry']:.2%}, provinces {rates['province']:.2%});"
                     f" published {published['national']:.2%} ({published['ministry']:.2%}, {published['province']:.2%})")
    lines.append(f"national portal: {plan.totals(key)['received_national_portal']:,} online dossiers received"
                 + (f" (published {calibration.received_national_portal:,} at scale 1)"
                    if calibration.received_national_portal is not None else ""))
    return lines


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
