"""`emc targets ...` and `emc agency ...`: per-agency targets, maintenance windows, status.

    emc targets set AGENCY PERIOD RATIO          RATIO 0..1 (0.85) or a percentage (85%)
    emc targets clear AGENCY PERIOD
    emc targets list [--format json|table]
    emc agency maintenance AGENCY [--from T] --until T --reason TEXT
    emc agency maintenance AGENCY --clear        end the window in effect now, drop those to come
    emc agency maintenance AGENCY --list         every declared window of the agency
    emc agency maintenance AGENCY --withdraw T   remove the window that starts at T (declared by mistake)
    emc agency status [--format json|table]

Targets and maintenance windows are records of the compacted control topic
(`streams/domain/control.py`); every worker reads it whole. Input is checked before anything
is sent: a bad agency, period, ratio or window stops with one line and exit 2. A record is
sent with acks=all and the command waits for the broker's acknowledgement.
`emc agency status` reads the `emc:v1:agencies` hash that the workers keep in Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from streams.domain.control import (
    ControlState,
    Maintenance,
    clearing_messages,
    declaration_messages,
    encode_record,
    make_maintenance,
    make_target,
    target_key,
    withdrawal_messages,
)
from streams.domain.events import rfc3339_to_us
from streams.domain.registry import Registry, display_width
from streams.errors import ConfigError, ExternalServiceError, InvalidControlRecord, InvalidEvent
from streams.settings import Settings

FORMATS = ("json", "table")


def add_commands(
    commands: argparse._SubParsersAction,
    add_settings: Callable[[argparse.ArgumentParser, Iterable[str]], None],
    parser_class: type[argparse.ArgumentParser],
) -> None:
    """Register `targets` and `agency` on the `emc` parser."""
    targets = commands.add_parser("targets", help="per-agency full-online targets (control topic)")
    target_commands = targets.add_subparsers(dest="targets_command", required=True, parser_class=parser_class)
    set_ = target_commands.add_parser("set", help="set an agency's target for a month, quarter or year")
    set_.add_argument("agency", help="agency code (emc registry list)")
    set_.add_argument("period", help="YYYY-MM, YYYY-Qn or YYYY")
    set_.add_argument("ratio", help="0..1 (0.85) or a percentage (85%%)")
    add_settings(set_, ["broker"])
    clear = target_commands.add_parser("clear", help="remove an agency's target for a period")
    clear.add_argument("agency")
    clear.add_argument("period")
    add_settings(clear, ["broker"])
    listing = target_commands.add_parser("list", help="shipped block targets and the agencies' own targets")
    listing.add_argument("--format", choices=FORMATS, default="table")
    add_settings(listing, ["broker"])

    agency = commands.add_parser("agency", help="agency maintenance windows and status")
    agency_commands = agency.add_subparsers(dest="agency_command", required=True, parser_class=parser_class)
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
    status = agency_commands.add_parser("status", help="every agency's status, from Redis")
    status.add_argument("--format", choices=FORMATS, default="table")
    add_settings(status, ["redis_url"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = Registry.load()
    if args.command == "targets":
        if args.targets_command == "set":
            return _targets_set(args, settings, registry)
        if args.targets_command == "clear":
            return _targets_clear(args, settings, registry)
        return _targets_list(args, settings, registry)
    if args.agency_command == "maintenance":
        return _maintenance(args, settings, registry)
    return _status(args, settings)


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_ratio(text: str) -> float:
    """`0.85` or `85%` -> 0.85; text that is not a number is a ConfigError (the range is
    checked with the record)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"ratio must be a number between 0 and 1 (0.85) or a percentage (85%), got {text!r}") from None
    return value


def _checked(build: Callable[[], object]) -> object:
    try:
        return build()
    except InvalidControlRecord as exc:
        raise ConfigError(str(exc)) from None


def _targets_set(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.control import send_control

    ratio = parse_ratio(args.ratio)
    target = _checked(lambda: make_target(registry, args.agency, args.period, ratio, _now_rfc3339()))
    key, value = encode_record(target)  # type: ignore[arg-type]
    partition, offset = send_control(settings, key, value)
    print(f"target {args.agency} {args.period} = {ratio:.2%} (topic {settings.control_topic}, partition {partition}, offset {offset})")
    return 0


def _targets_clear(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.control import send_control

    # The same checks as a target, so that a typo is not sent as a tombstone of nothing.
    _checked(lambda: make_target(registry, args.agency, args.period, 0.0, _now_rfc3339()))
    partition, offset = send_control(settings, target_key(args.agency, args.period).encode(), None)
    print(f"target {args.agency} {args.period} cleared (topic {settings.control_topic}, partition {partition}, offset {offset})")
    return 0


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
    now = _now_rfc3339()
    window: Maintenance | None = None
    withdrawn_us: int | None = None
    if args.withdraw is not None:
        withdrawn_us = _instant(args.withdraw, "--withdraw")
    elif not actions:
        start = args.start if args.start is not None else now
        window = _checked(lambda: make_maintenance(registry, args.agency, start, args.until, args.reason, now))  # type: ignore[assignment]
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


def _instant(text: str, flag: str) -> int:
    try:
        return rfc3339_to_us(text)
    except InvalidEvent:
        raise ConfigError(f"{flag}: {text!r} is not an RFC 3339 time with an offset, e.g. 2024-12-02T00:00:00+07:00") from None


def _print_windows(agency: str, state: ControlState, now_us: int) -> int:
    windows = state.maintenance.get(agency, ())
    if not windows:
        print(f"{agency}: no maintenance window declared")
        return 0
    rows = [(w.start, w.until, "in effect" if w.active_at(now_us) else ("ended" if w.until_us <= now_us else "to come"),
             w.reason) for w in windows]
    print(render_table(("from", "until", "state", "reason"), rows))
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
    print(render_table(("year", "national", "ministry", "province"),
                       [(str(year), *(_percent(scopes.get(s)) for s in ("national", "ministry", "province")))
                        for year, scopes in shipped.items()]))
    print()
    print(f"agency targets ({settings.control_topic})")
    if not agency_targets:
        print("  (none)")
        return 0
    print(render_table(("agency", "block", "period", "ratio", "set_at", "name"),
                       [(t["agency"], t["block"], t["period"], _percent(t["ratio"]), t["set_at"], t["name"])
                        for t in agency_targets]))
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
                     window.get("until", ""), _percent(doc.get("target_ratio")), doc.get("name", "")))
    print(render_table(("agency", "block", "status", "last_seen", "maintenance_until", "target", "name"), rows))
    return 0


def _name(registry: Registry, code: str) -> str:
    agency = registry.get(code)
    return agency.name if agency else code


def _block(registry: Registry, code: str) -> str | None:
    agency = registry.get(code)
    return agency.block if agency else None


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f} %"


def render_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(display_width(cell) for cell in column) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(cell + " " * (width - display_width(cell)) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    )
