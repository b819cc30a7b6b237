"""`emc publish FILE`: publish a JSON-lines file of events, keyed by agency."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from streams.cli.flags import add_settings, settings_from
from streams.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    publish = commands.add_parser("publish", help="publish a JSON-lines file of events, keyed by agency")
    publish.add_argument("file", type=Path)
    add_settings(publish, ["broker", "input_topic", "keyring"])
    publish.set_defaults(run=run)


def _progress(done: int, total: int | None, started: float, what: str) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    of = f"/{total}" if total else ""
    print(f"\r{what}: {done}{of} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from streams.kafka.producer import EventProducer
    from streams.security.keyring_file import signing_keyring

    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    settings = settings_from(args)
    lines = args.file.read_bytes().splitlines()
    started = time.monotonic()
    with EventProducer(settings, signing_keyring(settings)) as producer:
        sent = producer.send_lines(lines, progress=lambda n: _progress(n, len(lines), started, "published"))
    print(file=sys.stderr)
    print(f"published {sent} events to {settings.input_topic} ({producer.signing_summary()})")
    return 0
