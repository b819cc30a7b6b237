"""`emc agency maintenance|status`: agency maintenance windows and status.

    emc agency maintenance AGENCY [--from T] --until T --reason TEXT
    emc agency maintenance AGENCY --clear        end the window in effect now, drop those to come
    emc agency maintenance AGENCY --list         every declared window of the agency
    emc agency maintenance AGENCY --withdraw T   remove the window that starts at T (declared by mistake)
    emc agency status [--format json|table]

Maintenance windows are records of the compacted control topic (`streams/domain/control.py`).
`emc agency status` reads the `emc:v1:agencies` hash that the workers keep in Redis.
"""

from __future__ import annotations

import argparse
import json
import sys

from streams.cli.control_input import FORMATS, checked, instant
from streams.cli.flags import add_settings, settings_from, subcommands, with_settings_and_registry
from streams.domain.control import (
    ControlState,
    Maintenance,
    clearing_messages,
    declaration_messages,
    make_maintenance,
    withdrawal_messages,
)
from streams.domain.events import rfc3339_to_us
from streams.domain.instants import now_rfc3339
from streams.domain.registry import Registry
from streams.errors import ConfigError, ExternalServiceError
from streams.reports.table import percent_cell, render_table
from streams.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    agency = commands.add_parser("agency", help="agency maintenance windows and status")
    agency_commands = subcommands(agency, "agency_command")
    maintenance = agency_commands.add_parser("maintenance", help="declare (or --clear) a maintenance window")
    maintenance.add_argument("agency", help="agency code (emc registry list)")
    maintenance.add_argument("--from", dest="start", default=None, metavar="T",
                             help="RFC 3339 with offset, e.g. 2025-05-01T08:00:00+07:00 (default: now)")
    maintenance.add_argument("--until", default=None, metavar="T", help="RFC 3339 with offset; the window ends there by itself")
    maintenance.add_argument("--reason", default=None, help="why (shown in the status and the reports)")
    maintenance.add_argument("--clear", action="store_true",
                             help="end the window in effect now (kept as history) and remove the windows to come")
    maintenance.add_argument("--list", action="store_true", help="print the agency's declared windows, ended ones too")
    maintenance.add_argument("--withdraw", default=None, metavar="T",
                             help="remove the window that starts at T (as --list prints it), as if never declared")
    add_settings(maintenance, ["broker"])
    maintenance.set_defaults(run=with_settings_and_registry(_maintenance))
    status = agency_commands.add_parser("status", help="every agency's status, from Redis")
    status.add_argument("--format", choices=FORMATS, default="table")
    add_settings(status, ["redis_url"])
    status.set_defaults(run=lambda args: _status(args, settings_from(args)))


def _maintenance(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.control import read_control_state, send_control_messages

    actions = [flag for flag, given in (("--clear", args.clear), ("--list", args.list), ("--withdraw", args.withdraw is not None))
               if given]
    if len(actions) > 1:
        raise ConfigError(f"give one of {', '.join(actions)}, not several")
    if actions and (args.start is not None or args.until is not None or args.reason is not None):
        raise ConfigError(f"{actions[0]} takes no --from, --until or --reason")
    if not actions and (args.until is None or args.reason is None):
        raise ConfigError("agency maintenance needs --until and --reason (or --clear, --list or --withdraw)")
    if args.agency not in registry:
        raise ConfigError(f"unknown agency {args.agency!r} (see `emc registry list`)")
    now = now_rfc3339()
    window: Maintenance | None = None
    withdrawn_us: int | None = None
    if args.withdraw is not None:
        withdrawn_us = instant(args.withdraw, "--withdraw")
    elif not actions:
        start = args.start if args.start is not None else now
        window = checked(lambda: make_maintenance(registry, args.agency, start, args.until, args.reason, now))  # type: ignore[assignment]
    # What to send depends on the windows already declared (a new one cuts what it overlaps).
    state = read_control_state(settings, registry)
    if args.list:
        return _print_windows(args.agency, state, rfc3339_to_us(now))
    if withdrawn_us is not None:
        messages = withdrawal_messages(state, args.agency, withdrawn_us)
        if not messages:
            starts = ", ".join(w.start for w in state.maintenance.get(args.agency, ())) or "none"
            raise ConfigError(f"{args.agency} has no maintenance window starting at {args.withdraw} (windows start at: {starts})")
        partition, offset = send_control_messages(settings, messages)[-1]
        print(f"maintenance window of {args.agency} from {args.withdraw} withdrawn "
              f"(topic {settings.control_topic}, partition {partition}, offset {offset})")
        return 0
    messages = (clearing_messages(state, args.agency, now, rfc3339_to_us(now)) if window is None
                else declaration_messages(state, window))
    if not messages:
        print(f"{args.agency} has no maintenance window in effect or to come; nothing sent")
        return 0
    acks = send_control_messages(settings, messages)
    partition, offset = acks[-1]
    where = f"topic {settings.control_topic}, partition {partition}, offset {offset}"
    if window is None:
        print(f"maintenance of {args.agency} ended at {now} ({len(messages)} record(s), {where})")
    else:
        changed = f"; {len(messages) - 1} overlapping window(s) cut or replaced" if len(messages) > 1 else ""
        print(f"maintenance of {args.agency} from {window.start} until {window.until} declared{changed} ({where})")
    return 0


def _print_windows(agency: str, state: ControlState, now_us: int) -> int:
    windows = state.maintenance.get(agency, ())
    if not windows:
        print(f"{agency}: no maintenance window declared")
        return 0
    rows = [(w.start, w.until, "in effect" if w.active_at(now_us) else ("ended" if w.until_us <= now_us else "to come"),
             w.reason) for w in windows]
    print(render_table(("from", "until", "state", "reason"), rows))
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=2.0,
                                  socket_timeout=5.0, retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=2))
    from streams.sinks.keys import RedisKeys

    key = RedisKeys(settings.redis_prefix).agencies
    try:
        raw = client.hgetall(key)
    except RedisError as exc:
        raise ExternalServiceError(f"cannot read {key} from {settings.redis_url}: {exc}") from exc
    finally:
        client.close()
    docs = [{"code": code, **json.loads(value)} for code, value in sorted(raw.items())]
    if args.format == "json":
        print(json.dumps(docs, ensure_ascii=False, indent=2))
        return 0
    if not docs:
        print(f"no agency status in {key} yet (is a worker running?)", file=sys.stderr)
        return 0
    rows = []
    for doc in docs:
        window = doc.get("maintenance") or {}
        seen = max((t for t in (doc.get("last_event_at"), doc.get("last_heartbeat_at")) if t), default="")
        rows.append((doc["code"], doc.get("block") or "", doc.get("status", ""), seen,
                     window.get("until", ""), percent_cell(doc.get("target_ratio")), doc.get("name", "")))
    print(render_table(("agency", "block", "status", "last_seen", "maintenance_until", "target", "name"), rows))
    return 0
