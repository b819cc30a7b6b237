"""`emc worker`: run one stream worker."""

from __future__ import annotations

import argparse

from streams.cli.flags import add_settings, settings_from

WORKER_SETTINGS = ("broker", "redis_url", "metrics_port", "data_dir", "partitions", "input_topic", "log_level",
                   "worker_name", "auth", "keyring")


def register(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="run one stream worker")
    add_settings(worker, WORKER_SETTINGS)
    worker.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from streams.worker.app import run_worker

    run_worker(settings_from(args))
    return 0
