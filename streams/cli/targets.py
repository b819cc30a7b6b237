"""`emc targets set|clear|list`: per-agency full-online targets on the control topic.

    emc targets set AGENCY PERIOD RATIO          RATIO 0..1 (0.85) or a percentage (85%)
    emc targets clear AGENCY PERIOD
    emc targets list [--format json|table]

Targets are records of the compacted control topic (`streams/domain/control.py`); every worker
reads it whole. A record is sent with acks=all and the command waits for the broker's
acknowledgement.
"""

from __future__ import annotations

import argparse
import json

from streams.cli.control_input import FORMATS, checked, parse_ratio
from streams.cli.flags import add_settings, subcommands, with_settings_and_registry
from streams.domain.control import ControlState, encode_record, make_target, target_key
from streams.domain.instants import now_rfc3339
from streams.domain.registry import SCOPES, Registry
from streams.reports.table import percent_cell, render_table
from streams.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    targets = commands.add_parser("targets", help="per-agency full-online targets (control topic)")
    target_commands = subcommands(targets, "targets_command")
    set_ = target_commands.add_parser("set", help="set an agency's target for a month, quarter or year")
    set_.add_argument("agency", help="agency code (emc registry list)")
    set_.add_argument("period", help="YYYY-MM, YYYY-Qn or YYYY")
    set_.add_argument("ratio", help="0..1 (0.85) or a percentage (85%%)")
    add_settings(set_, ["broker"])
    set_.set_defaults(run=with_settings_and_registry(_targets_set))
    clear = target_commands.add_parser("clear", help="remove an agency's target for a period")
    clear.add_argument("agency")
    clear.add_argument("period")
    add_settings(clear, ["broker"])
    clear.set_defaults(run=with_settings_and_registry(_targets_clear))
    listing = target_commands.add_parser("list", help="shipped block targets and the agencies' own targets")
    listing.add_argument("--format", choices=FORMATS, default="table")
    add_settings(listing, ["broker"])
    listing.set_defaults(run=with_settings_and_registry(_targets_list))


def _targets_set(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.control import send_control

    ratio = parse_ratio(args.ratio)
    target = checked(lambda: make_target(registry, args.agency, args.period, ratio, now_rfc3339()))
    key, value = encode_record(target)  # type: ignore[arg-type]
    partition, offset = send_control(settings, key, value)
    print(f"target {args.agency} {args.period} = {ratio:.2%} (topic {settings.control_topic}, partition {partition}, offset {offset})")
    return 0


def _targets_clear(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.control import send_control

    # The same checks as a target, so that a typo is not sent as a tombstone of nothing.
    checked(lambda: make_target(registry, args.agency, args.period, 0.0, now_rfc3339()))
    partition, offset = send_control(settings, target_key(args.agency, args.period).encode(), None)
    print(f"target {args.agency} {args.period} cleared (topic {settings.control_topic}, partition {partition}, offset {offset})")
    return 0


def _targets_list(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.domain.targets import shipped_targets
    from streams.kafka.control import read_control_state

    state: ControlState = read_control_state(settings, registry)
    agency_targets = [
        {"agency": t.agency, "name": _name(registry, t.agency), "block": _block(registry, t.agency),
         "period": t.period, "window": t.window, "ratio": t.ratio, "set_at": t.set_at}
        for _, t in sorted(state.targets.items(), key=lambda item: item[0])
    ]
    shipped = shipped_targets()
    if args.format == "json":
        print(json.dumps({"block_targets": {str(year): scopes for year, scopes in shipped.items()},
                          "agency_targets": agency_targets}, ensure_ascii=False, indent=2))
        return 0
    print("block and national targets (shipped, streams/data/targets.json)")
    print(render_table(("year", *SCOPES),
                       [(str(year), *(percent_cell(scopes.get(s)) for s in SCOPES))
                        for year, scopes in shipped.items()]))
    print()
    print(f"agency targets ({settings.control_topic})")
    if not agency_targets:
        print("  (none)")
        return 0
    print(render_table(("agency", "block", "period", "ratio", "set_at", "name"),
                       [(t["agency"], t["block"], t["period"], percent_cell(t["ratio"]), t["set_at"], t["name"])
                        for t in agency_targets]))
    return 0


def _name(registry: Registry, code: str) -> str:
    agency = registry.get(code)
    return agency.name if agency else code


def _block(registry: Registry, code: str) -> str | None:
    agency = registry.get(code)
    return agency.block if agency else None
