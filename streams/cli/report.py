"""`emc report`: the bulletin of a period (rates vs targets, rankings, lists), read from Redis,
or as published (`--as-published`, `emc bulletin publish`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path

from streams.cli.argtypes import day, positive_integer
from streams.cli.flags import add_settings, settings_from
from streams.cli.redis_reads import PERIOD_HELP, period_text, with_redis
from streams.domain.registry import BLOCKS
from streams.domain.reorg import VIEWS
from streams.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="the bulletin of a period: rates vs targets, rankings, lists")
    report.add_argument("--period", required=True, help=PERIOD_HELP)
    report.add_argument("--block", choices=list(BLOCKS), default=None, help="only this block")
    report.add_argument("--lang", choices=["vi", "en"], default="vi")
    report.add_argument("--format", choices=["text", "json", "html"], default="text")
    report.add_argument("--view", choices=list(VIEWS), default=VIEWS[0],
                        help="as-was: agencies as they were; restated: summed onto today's successors")
    report.add_argument("--restate-on", type=day, default=None, help="restated view: the units of this day (default today)")
    report.add_argument("--top", type=positive_integer, default=10, help="length of the top lists (default 10)")
    report.add_argument("--out", type=Path, default=None, help="write to this file instead of standard output")
    report.add_argument("--as-published", nargs="?", type=positive_integer, const=0, default=None, metavar="N",
                        help="the report as published in version N (default the latest): `emc bulletin publish`")
    add_settings(report, ["broker", "bulletin_topic", "redis_url", "redis_prefix"])
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from streams.domain.periods import today_local
    from streams.domain.registry import Registry
    from streams.reports.bulletins import as_published_report, current_finality, load_document
    from streams.reports.gather import REPORT_BLOCKS, gather_report
    from streams.reports.render import render

    period = period_text(args.period)
    settings = settings_from(args)
    registry = Registry.load()
    blocks = (args.block,) if args.block else REPORT_BLOCKS

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
