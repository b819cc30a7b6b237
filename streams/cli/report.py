"""The `emc report` and `emc explain` commands: arguments and dispatch.

Heavy modules (redis, kafka) are imported when a command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path

from streams.cli.argtypes import day, positive_integer
from streams.errors import ConfigError, ExternalServiceError
from streams.settings import Settings, load_settings

COMMANDS = ("report", "explain")


def _redis_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None, help="redis://HOST:PORT/DB (env EMC_REDIS_URL)")
    parser.add_argument("--redis-prefix", default=None, help="key prefix (env EMC_REDIS_PREFIX, default emc:v1:)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="the bulletin of a period: rates vs targets, rankings, lists")
    report.add_argument("--period", required=True, help="YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD")
    report.add_argument("--block", choices=["ministry", "province"], default=None, help="only this block")
    report.add_argument("--lang", choices=["vi", "en"], default="vi")
    report.add_argument("--format", choices=["text", "json", "html"], default="text")
    report.add_argument("--view", choices=["as-was", "restated"], default="as-was",
                        help="as-was: agencies as they were; restated: summed onto today's successors")
    report.add_argument("--restate-on", type=day, default=None, help="restated view: the units of this day (default today)")
    report.add_argument("--top", type=positive_integer, default=10, help="length of the top lists (default 10)")
    report.add_argument("--out", type=Path, default=None, help="write to this file instead of standard output")
    report.add_argument("--as-published", nargs="?", type=positive_integer, const=0, default=None, metavar="N",
                        help="the report as published in version N (default the latest): `emc bulletin publish`")
    report.add_argument("--broker", default=None, help="--as-published: kafka://HOST:PORT, read when Redis lost the version")
    report.add_argument("--bulletin-topic", default=None, help="env EMC_BULLETIN_TOPIC (default emc.bulletins.v1)")
    _redis_flags(report)

    explain = commands.add_parser("explain", help="why an agency's figure of a period is what it is")
    explain.add_argument("agency")
    explain.add_argument("period", help="YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD")
    explain.add_argument("--sample", type=positive_integer, default=3, help="dossiers shown per mode (default 3)")
    explain.add_argument("--format", choices=["text", "json"], default="text")
    explain.add_argument("--broker", default=None, help="kafka://HOST:PORT (env EMC_BROKER)")
    explain.add_argument("--app-id", default=None, help="the workers' app id (env EMC_APP_ID): names the changelog")
    explain.add_argument("--timeout", type=positive_integer, default=60, help="seconds to read the changelog (default 60)")
    _redis_flags(explain)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings({
        "redis_url": args.redis_url, "redis_prefix": args.redis_prefix,
        "broker": getattr(args, "broker", None), "app_id": getattr(args, "app_id", None),
        "bulletin_topic": getattr(args, "bulletin_topic", None),
    })


def _period(text: str) -> str:
    from streams.domain.periods import parse_period

    try:
        return parse_period(text).text
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        return _report(args)
    return _explain(args)


def _redis_client(settings: Settings):  # noqa: ANN202 - redis.asyncio.Redis
    from streams.sinks.redis_snapshots import connect

    return connect(settings)


async def with_redis(settings: Settings, work):  # noqa: ANN001, ANN202
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    client = _redis_client(settings)
    try:
        return await work(client)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ExternalServiceError(f"redis {settings.redis_url} unreachable: {exc}") from exc
    finally:
        await client.aclose()


def _report(args: argparse.Namespace) -> int:
    from streams.domain.periods import today_local
    from streams.domain.registry import Registry
    from streams.reports.bulletins import as_published_report, current_finality, load_document
    from streams.reports.gather import gather_report
    from streams.reports.render import render

    period = _period(args.period)
    settings = _settings(args)
    registry = Registry.load()
    blocks = (args.block,) if args.block else ("province", "ministry")
    async def current(client):  # noqa: ANN001, ANN202
        now = datetime.now(timezone.utc)
        finality = await current_finality(client, registry, settings.redis_prefix, period, now)
        return await gather_report(client, registry, settings.redis_prefix, period, blocks=blocks, view=args.view,
                                   top_n=args.top, today=today_local(), restate_on=args.restate_on, now=now,
                                   finality=finality)

    async def as_published(client):  # noqa: ANN001, ANN202
        doc = await load_document(settings, client, period, args.as_published or None)
        return as_published_report(doc, registry, blocks=blocks, view=args.view, top_n=args.top,
                                   restate_on=args.restate_on)

    data = asyncio.run(with_redis(settings, current if args.as_published is None else as_published))
    text = render(data, args.format, args.lang)
    if args.out is not None:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: {exc.strerror}") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _explain(args: argparse.Namespace) -> int:
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
    period = _period(args.period)
    agency = agency.named_on(parse_period(period).last_day)  # the name it bore then (Thừa Thiên Huế in 2024)
    settings = _settings(args)
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
