"""`emc local`: broker, Redis, a worker and calibrated traffic on this machine (streams/local/demo.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.cli.flags import add_settings
from streams.cli.simulate import add_traffic_arguments, profile_config


def register(commands: argparse._SubParsersAction) -> None:
    local = commands.add_parser("local", help="run broker, redis, a worker and traffic on this machine")
    add_traffic_arguments(local, scale=0.001, floors=(100, 30), heartbeat_hours=24)
    local.add_argument("--month", default=None,
                       help="YYYY-MM to replay (default: the profile's last published month, 2024-12 / 2025-04), "
                            "or 'now': the current month from its first day up to now, so that the current "
                            "windows of /metrics (and the dashboards) hold it")
    local.add_argument("--seconds", type=float, default=60.0, help="how long the month's traffic takes (default 60)")
    local.add_argument("--workdir", type=Path, default=Path(".emc-local"))
    local.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    local.add_argument("--exit-when-done", action="store_true", help="stop once Redis holds the whole month")
    add_settings(local, ["metrics_port"])
    local.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from streams.local.demo import run_local

    return run_local(args, lambda **window: profile_config(args, **window))
