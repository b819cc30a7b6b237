"""`emc bulletin publish|list|diff` (issue 15): arguments, dispatch and the text/JSON output.

Heavy modules (redis, kafka) are imported when a command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from fractions import Fraction

from streams.cli.argtypes import positive_integer
from streams.cli.flags import add_settings, settings_from, subcommands
from streams.cli.redis_reads import PERIOD_HELP, period_text, with_redis
from streams.settings import Settings

CONNECTION_SETTINGS = ("broker", "bulletin_topic", "redis_url", "redis_prefix")


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, CONNECTION_SETTINGS)
    parser.set_defaults(run=run)


def register(commands: argparse._SubParsersAction) -> None:
    bulletin = commands.add_parser("bulletin", help="published versions of a period's figures, and what changed since")
    actions = subcommands(bulletin, "bulletin_command")

    publish = actions.add_parser("publish", help="freeze the period's figures as its next version")
    publish.add_argument("period", help=PERIOD_HELP)
    publish.add_argument("--note", default=None, help="a note kept with the version")
    _connection_flags(publish)

    listing = actions.add_parser("list", help="the published versions (from the bulletin topic)")
    listing.add_argument("--period", default=None, help="only this period")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    _connection_flags(listing)

    diff = actions.add_parser("diff", help="what changed since a published version")
    diff.add_argument("period", help=PERIOD_HELP)
    diff.add_argument("version", nargs="?", type=positive_integer, default=None, help="the version (default the latest)")
    diff.add_argument("--format", choices=["text", "json"], default="text")
    diff.add_argument("--lang", choices=["vi", "en"], default="en")
    _connection_flags(diff)


def run(args: argparse.Namespace) -> int:
    from streams.domain.registry import Registry

    settings = settings_from(args)
    registry = Registry.load()
    if args.bulletin_command == "publish":
        return _publish(args, settings, registry, with_redis)
    if args.bulletin_command == "list":
        return _list(args, settings)
    return _diff(args, settings, registry, with_redis)


def _percent(rate: Fraction | None, lang: str = "en") -> str:
    from streams.reports.render import format_percent

    return format_percent(rate, lang)


def _rate(counts: dict) -> Fraction | None:
    resolved = counts.get("resolved", 0)
    return Fraction(counts.get("full_online", 0), resolved) if resolved else None


def _publish(args: argparse.Namespace, settings: Settings, registry, with_redis) -> int:  # noqa: ANN001
    from streams.reports.bulletins import publish
    from streams.sinks.keys import RedisKeys

    period = period_text(args.period)
    done = asyncio.run(with_redis(settings, lambda client: publish(settings, client, registry, period, args.note)))
    doc = done.doc
    national = doc["blocks"].get("national", {})
    print(f"published {period} v{doc['version']} at {doc['published_at']}: {len(doc['agencies'])} agencies, "
          f"national {_percent(_rate(national))} ({national.get('full_online', 0)}/{national.get('resolved', 0)}), "
          f"sha256 {doc['sha256']}")
    print(f"  {settings.bulletin_topic} partition {done.partition} offset {done.offset}; "
          f"redis {RedisKeys(settings.redis_prefix).bulletin(period, doc['version'])}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.reports.bulletins import list_documents

    period = period_text(args.period) if args.period else None
    found = list_documents(settings, period)
    if args.format == "json":
        sys.stdout.write(json.dumps([s.to_json() for s in found], ensure_ascii=False, indent=2) + "\n")
        return 0
    if not found:
        print("no bulletin published" + (f" for {period}" if period else ""))
        return 0
    for s in found:
        note = f"  {s.note}" if s.note else ""
        print(f"{s.period:<10} v{s.version:<3} {s.published_at}  sha256 {s.sha256[:16]}…{note}")
    return 0


def _number(rate: Fraction | None) -> float | None:
    return None if rate is None else round(float(rate), 6)


def diff_json(diff) -> dict:  # noqa: ANN001 - streams.reports.bulletins.BulletinDiff
    doc = diff.doc
    return {
        "period": doc["period"], "version": doc["version"], "published_at": doc["published_at"],
        "sha256": doc["sha256"],
        "national": {"before": diff.national_before, "now": diff.national_now,
                     "rate_before": _number(_rate(dict(diff.national_before))),
                     "rate_now": _number(_rate(dict(diff.national_now)))},
        "events_since": dict(diff.events),
        "agencies_restated": len(diff.agencies),
        "agencies": [
            {"code": a.code, "name": a.name, "block": a.block, "before": dict(a.before), "now": dict(a.now),
             "rate_before": _number(a.rate_before), "rate_now": _number(a.rate_now),
             "rank_before": a.rank_before, "rank_now": a.rank_now, "rank_changed": a.rank_changed,
             "under_threshold_before": a.under_before, "under_threshold_now": a.under_now,
             "under_threshold_changed": a.under_changed, "events_since": dict(a.events)}
            for a in diff.agencies
        ],
    }


def _events_text(events: dict) -> str:
    return (f"{events.get('events_applied', 0) + events.get('events_duplicates', 0)} events since publication: "
            f"{events.get('events_after_close', 0)} late, {events.get('events_corrections', 0)} corrections, "
            f"{events.get('events_voids', 0)} voids, {events.get('events_duplicates', 0)} duplicates ignored")


def diff_text(diff, lang: str = "en") -> str:  # noqa: ANN001
    doc = diff.doc
    out = [f"{doc['period']} v{doc['version']} published {doc['published_at']}"
           + (f" ({doc['note']})" if doc.get("note") else ""),
           f"national: {_percent(_rate(dict(diff.national_before)), lang)} -> {_percent(_rate(dict(diff.national_now)), lang)} "
           f"({diff.national_before.get('full_online', 0)}/{diff.national_before.get('resolved', 0)} -> "
           f"{diff.national_now.get('full_online', 0)}/{diff.national_now.get('resolved', 0)}); {_events_text(dict(diff.events))}",
           f"agencies restated since publication: {len(diff.agencies)}"]
    for a in diff.agencies:
        rank = f"rank {a.rank_before or '-'} -> {a.rank_now or '-'}" if a.rank_changed else f"rank {a.rank_now or '-'} (unchanged)"
        under = ""
        if a.under_changed:
            under = "; now under 10 %" if a.under_now else "; no longer under 10 %"
        out.append(f"  {a.code} {a.name}: {_percent(a.rate_before, lang)} -> {_percent(a.rate_now, lang)}; {rank}{under}")
        out.append("    " + ", ".join(f"{f} {a.before[f]} -> {a.now[f]}" for f in a.before))
        out.append("    " + _events_text(dict(a.events)))
    return "\n".join(out) + "\n"


def _diff(args: argparse.Namespace, settings: Settings, registry, with_redis) -> int:  # noqa: ANN001
    from streams.domain.periods import today_local
    from streams.reports.bulletins import diff_since, load_document

    period = period_text(args.period)

    async def work(client):  # noqa: ANN001, ANN202
        doc = await load_document(settings, client, period, args.version)
        return await diff_since(client, registry, settings.redis_prefix, doc, today_local())

    diff = asyncio.run(with_redis(settings, work))
    if args.format == "json":
        sys.stdout.write(json.dumps(diff_json(diff), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(diff_text(diff, args.lang))
    return 0
