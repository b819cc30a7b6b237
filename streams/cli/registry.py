"""`emc registry list`: the agency registry."""

from __future__ import annotations

import argparse
from datetime import date

from streams.cli.flags import subcommands
from streams.reports.registry import RENDER_FORMATS


def register(commands: argparse._SubParsersAction) -> None:
    registry = commands.add_parser("registry", help="the agency registry")
    listing = subcommands(registry, "registry_command").add_parser("list", help="print the registry")
    listing.add_argument("--format", choices=list(RENDER_FORMATS), default="table")
    listing.add_argument("--on", type=date.fromisoformat, default=None, help="only agencies valid on this date")
    listing.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    from streams.domain.registry import Registry
    from streams.reports.registry import render_registry

    print(render_registry(Registry.load(), args.format, on=args.on))
    return 0
