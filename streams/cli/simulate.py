"""`emc simulate` and the flags of `emc local`: calibrated traffic to a file or the broker."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from streams.cli.argtypes import count, positive_number, share
from streams.cli.flags import add_settings, settings_from
from streams.errors import ConfigError
from streams.simulation.calibration import PROFILES
from streams.simulation.pacing import Pacer, Progress
from streams.simulation.profile import ProfileConfig, ProfileSimulation
from streams.simulation.traffic import declare_catalogue, declare_maintenance, procedure_plan_lines, pump


def add_traffic_arguments(parser: argparse.ArgumentParser, scale: float, floors: tuple[int, int],
                          heartbeat_hours: float) -> None:
    """The flags shared by `emc simulate` and `emc local`."""
    parser.add_argument("--profile", choices=PROFILES, default="2024", help="published figures to reproduce (default 2024)")
    parser.add_argument("--scale", type=positive_number, default=scale,
                        help=f"share of the real volume (default {scale}; 2024 is ~76 million resolved dossiers)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same bytes")
    parser.add_argument("--min-resolved-published", type=count, default=floors[0],
                        help=f"at least this many resolved dossiers for an agency with a published rate (default {floors[0]})")
    parser.add_argument("--min-resolved", type=count, default=floors[1],
                        help=f"at least this many for the other agencies (default {floors[1]})")
    parser.add_argument("--heartbeat-every", type=float, default=heartbeat_hours, metavar="HOURS",
                        help=f"hours between an agency's heartbeats, 0 for none (default {heartbeat_hours:g})")
    parser.add_argument("--duplicates", type=share, default=0.02, help="share of events sent twice")
    parser.add_argument("--corrections", type=share, default=0.01, help="share of dossiers with a corrected event (supersedes)")
    parser.add_argument("--voids", type=share, default=0.005, help="extra voided dossiers per resolved dossier")
    parser.add_argument("--late", type=share, default=0.02, help="share of events sent hours to days late")
    parser.add_argument("--bad", type=share, default=0.001, help="share of events followed by a bad message (dead letter)")
    parser.add_argument("--lean", action="store_true", help="only the events classification needs (faster pipelines)")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("simulate", help="generate national dossier traffic calibrated on the EMC figures")
    add_traffic_arguments(parser, scale=0.001, floors=(200, 100), heartbeat_hours=24)
    parser.add_argument("--period", default=None,
                        help="YYYY, YYYY-Qn or YYYY-MM inside which every dossier is resolved (default: 2024 / 2025)")
    parser.add_argument("--rate", type=positive_number, default=None, metavar="EV_PER_S", help="publish at most this many messages a second")
    parser.add_argument("--speedup", type=positive_number, default=None, metavar="X",
                        help="pace by the simulated clock, X times faster than real time")
    parser.add_argument("--to", type=Path, help="write the events as JSON lines to this file instead of publishing "
                        "(the maintenance windows are declared on the control topic only when publishing)")
    parser.add_argument("--publish", action="store_true", help="publish to the broker (the default without --to)")
    add_settings(parser, ["broker", "input_topic", "keyring"])
    parser.set_defaults(run=run)


def profile_config(args: argparse.Namespace, **window: object) -> ProfileConfig:
    return ProfileConfig(
        profile=args.profile, scale=args.scale, seed=args.seed,
        min_resolved_published=args.min_resolved_published, min_resolved=args.min_resolved,
        duplicate_share=args.duplicates, correction_share=args.corrections, void_share=args.voids,
        late_share=args.late, bad_share=args.bad, lean=args.lean,
        heartbeat_every=timedelta(hours=args.heartbeat_every) if args.heartbeat_every > 0 else None,
        **window,  # type: ignore[arg-type]
    )


def run(args: argparse.Namespace) -> int:
    if args.to is not None and (args.publish or getattr(args, "broker", None)):
        raise ConfigError("give --to FILE or --broker URL / --publish, not both")
    simulation = ProfileSimulation(profile_config(args, period=args.period))
    full, resolved = simulation.plan.totals()
    print(f"profile {args.profile}: {resolved:,} resolved dossiers, {full / resolved:.2%} fully online "
          f"(ministries {simulation.plan.rate('ministry'):.2%}, provinces {simulation.plan.rate('province'):.2%})",
          file=sys.stderr)
    reference = simulation.calibration.reference_period.text
    if len(reference) == 7:  # a published month: what this run gives it, in a longer window too
        month, calibration = simulation.month_plan((int(reference[:4]), int(reference[5:7]))), simulation.calibration
        if month.units and calibration.national_rate is not None:
            print(f"  {reference}: 3. fully-online dossiers: {month.rate():.2%} (ministries {month.rate('ministry'):.2%}, "
                  f"provinces {month.rate('province'):.2%}); published {calibration.national_rate:.2%} "
                  f"({calibration.block_rates['ministry']:.2%}, {calibration.block_rates['province']:.2%})", file=sys.stderr)
    for line in procedure_plan_lines(simulation, reference) if len(reference) == 7 else ():
        print(f"  {reference}: {line}", file=sys.stderr)
    pacer = Pacer(args.rate, args.speedup, window=(simulation.start_us, simulation.end_us))
    progress = Progress(simulation.start_us, simulation.end_us)
    if args.to is not None:
        with args.to.open("wb") as out:
            count = pump(simulation.messages(), pacer, progress, lambda m: out.write(m.value + b"\n"))
        print(f"wrote {count} messages to {args.to}")
        return 0
    from streams.kafka.producer import EventProducer

    settings = settings_from(args)
    declare_maintenance(settings, simulation)
    declare_catalogue(settings, simulation)
    from streams.security.keyring_file import signing_keyring

    with EventProducer(settings, signing_keyring(settings)) as producer:
        count = pump(simulation.messages(), pacer, progress, lambda m: producer.send(m.key, m.value))
        producer.flush()
    print(f"published {count} messages to {settings.input_topic} ({producer.signing_summary()})")
    return 0
