"""The `emc` command line: worker, publish, simulate, local, registry."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from streams.errors import ConfigError, EmcError
from streams.settings import ENV_VARS, LOG_LEVELS, Settings, load_settings

_SETTING_FLAGS = {
    "broker": ("--broker", str, "Kafka bootstrap, kafka://HOST:PORT"),
    "redis_url": ("--redis-url", str, "redis://HOST:PORT/DB"),
    "metrics_port": ("--metrics-port", str, "port of /metrics"),
    "data_dir": ("--data-dir", str, "directory of the table store"),
    "partitions": ("--partitions", str, "state partitions (= batch topic partitions)"),
    "input_topic": ("--input-topic", str, "input topic"),
    "log_level": ("--log-level", str, f"one of {'|'.join(LOG_LEVELS)}"),
    "worker_name": ("--worker-name", str, "name shown in emc_worker_info"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one readable line, exit 2
        raise ConfigError(message)


def _add_settings(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    for name in names:
        flag, kind, help_text = _SETTING_FLAGS[name]
        parser.add_argument(flag, dest=name, type=kind, default=None, help=f"{help_text} (env {ENV_VARS[name]})")


def _settings_from(args: argparse.Namespace) -> Settings:
    return load_settings({name: getattr(args, name, None) for name in _SETTING_FLAGS})


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emc", description="EMC Streams: exact full-online counts per agency")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    worker = commands.add_parser("worker", help="run one stream worker")
    _add_settings(worker, _SETTING_FLAGS)

    publish = commands.add_parser("publish", help="publish a JSON-lines file of events, keyed by agency")
    publish.add_argument("file", type=Path)
    _add_settings(publish, ["broker", "input_topic"])

    from streams.cli.simulate import add_simulate_arguments
    from streams.local.demo import add_local_arguments

    simulate = commands.add_parser("simulate", help="generate national dossier traffic calibrated on the EMC figures")
    add_simulate_arguments(simulate)
    _add_settings(simulate, ["broker", "input_topic"])

    local = commands.add_parser("local", help="run broker, redis, a worker and traffic on this machine")
    add_local_arguments(local)

    registry = commands.add_parser("registry", help="the agency registry")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True, parser_class=_Parser)
    listing = registry_commands.add_parser("list", help="print the registry")
    listing.add_argument("--format", choices=["json", "table"], default="table")
    listing.add_argument("--on", type=date.fromisoformat, default=None, help="only agencies valid on this date")

    from streams.cli import control as control_cli  # emc targets ..., emc agency ...

    control_cli.add_commands(commands, _add_settings, _Parser)

    from streams.cli import report as report_cli  # emc report ..., emc explain ...

    report_cli.add_commands(commands)

    from streams.cli import bulletin as bulletin_cli  # emc bulletin publish|list|diff

    bulletin_cli.register(commands, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except ConfigError as exc:
        print(f"emc: error: {exc}", file=sys.stderr)
        return 2
    except EmcError as exc:
        print(f"emc: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`emc report | head`). Point stdout at
        # /dev/null so the interpreter's final flush cannot raise again, and exit
        # like a process killed by SIGPIPE, as shell tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from streams.worker.app import run_worker

        run_worker(_settings_from(args))
        return 0
    if args.command == "publish":
        return _publish_file(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "local":
        from streams.local.demo import run_local

        return run_local(args)
    if args.command in ("targets", "agency"):
        from streams.cli import control as control_cli

        return control_cli.run(args, _settings_from(args))
    if args.command in ("report", "explain"):
        from streams.cli import report as report_cli

        return report_cli.run(args)
    if args.command == "bulletin":
        from streams.cli import bulletin as bulletin_cli

        return bulletin_cli.run(args)
    if args.command == "registry":
        from streams.domain.registry import Registry, render_registry

        print(render_registry(Registry.load(), args.format, on=args.on))
        return 0
    raise ConfigError(f"unknown command {args.command}")  # pragma: no cover - argparse prevents it


def _progress(done: int, total: int | None, started: float, what: str) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    of = f"/{total}" if total else ""
    print(f"\r{what}: {done}{of} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


def _publish_file(args: argparse.Namespace) -> int:
    from streams.kafka.producer import EventProducer

    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    settings = _settings_from(args)
    lines = args.file.read_bytes().splitlines()
    started = time.monotonic()
    with EventProducer(settings) as producer:
        sent = producer.send_lines(lines, progress=lambda n: _progress(n, len(lines), started, "published"))
    print(file=sys.stderr)
    print(f"published {sent} events to {settings.input_topic}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from streams.cli.simulate import run_simulate

    return run_simulate(args, _settings_from)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
