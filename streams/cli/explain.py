"""`emc explain AGENCY PERIOD`: why an agency's figure of a period is what it is."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streams.cli.argtypes import positive_integer
from streams.cli.flags import add_settings, settings_from
from streams.cli.redis_reads import PERIOD_HELP, period_text, with_redis
from streams.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser("explain", help="why an agency's figure of a period is what it is")
    explain.add_argument("agency")
    explain.add_argument("period", help=PERIOD_HELP)
    explain.add_argument("--sample", type=positive_integer, default=3, help="dossiers shown per mode (default 3)")
    explain.add_argument("--format", choices=["text", "json"], default="text")
    add_settings(explain, ["broker", "app_id"])
    explain.add_argument("--timeout", type=positive_integer, default=60, help="seconds to read the changelog (default 60)")
    add_settings(explain, ["redis_url", "redis_prefix"])
    explain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from streams.domain.periods import parse_period
    from streams.domain.registry import Registry
    from streams.domain.snapshot import counts_from_hash
    from streams.reports.explain import explain, explanation_json, read_dossier_rows, render_explanation_text
    from streams.sinks.keys import RedisKeys

    registry = Registry.load()
    agency = registry.get(args.agency)
    if agency is None:
        raise ConfigError(f"unknown agency {args.agency!r}: see `emc registry list`")
    period = period_text(args.period)
    agency = agency.named_on(parse_period(period).last_day)  # the name it bore then (Thừa Thiên Huế in 2024)
    settings = settings_from(args)
    rows = read_dossier_rows(settings, agency.code, timeout_s=args.timeout)

    async def read_hash(client) -> dict:  # noqa: ANN001
        return await client.hgetall(RedisKeys(settings.redis_prefix).agency(agency.code, period))

    redis_counts = counts_from_hash(asyncio.run(with_redis(settings, read_hash)))
    result = explain(agency.code, period, rows, sample=args.sample, redis_counts=redis_counts)
    if args.format == "json":
        sys.stdout.write(json.dumps({**explanation_json(result), "name": agency.name}, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(render_explanation_text(result, agency.name))
    return 0
