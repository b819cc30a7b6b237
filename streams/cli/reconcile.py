"""`emc reconcile AGENCY PERIOD --file EXPORT`: the agency's own records against EMC's dossiers.

Exit status: 0 they agree, 1 they differ, 2 a bad flag or export file (one line), 3 EMC's side
could not be read (no worker owns the agency's partition yet, a worker or Redis unreachable).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.cli.flags import add_settings, settings_from
from streams.cli.redis_reads import PERIOD_HELP, period_text, with_redis
from streams.errors import ConfigError, ExternalServiceError

EXIT_AGREE, EXIT_DIFFER, EXIT_UNREADABLE = 0, 1, 3

class _Background(threading.Thread):
    """`work()` in a daemon thread (it dies with the command when the export turns out bad);
    `result()` waits for it and returns its value, or raises its exception here."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(name="reconcile-emc-side", daemon=True)
        self._work = work
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # noqa: BLE001 - raised again by result(), in the command's thread
            self._error = exc

    def result(self) -> Any:  # noqa: ANN401 - what work() returned
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def register(commands: argparse._SubParsersAction) -> None:
    reconcile = commands.add_parser("reconcile", help="compare an agency's export of its dossiers with EMC's (đối soát)")
    reconcile.add_argument("agency")
    reconcile.add_argument("period", help=PERIOD_HELP)
    reconcile.add_argument("--file", required=True, type=Path, help="the agency's export: CSV with a header, or JSON lines")
    reconcile.add_argument("--format", choices=["text", "json", "csv"], default="text")
    reconcile.add_argument("--worker", default=None,
                           help="URL of any worker's metrics port (default: the owner's, from Redis emc:v1:workers)")
    reconcile.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the worker's answer (default 60)")
    add_settings(reconcile, ["redis_url", "redis_prefix", "partitions"])
    reconcile.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from streams.domain.periods import parse_period
    from streams.domain.registry import Registry
    from streams.reports.reconcile import (
        WorkerClient,
        emc_records,
        read_export,
        read_summaries,
        reconciliation_json,
        render_reconciliation_csv,
        render_reconciliation_text,
    )
    from streams.sinks.metrics_server import metrics_basic_auth

    registry = Registry.load()
    agency = registry.get(args.agency)
    if agency is None:
        raise ConfigError(f"unknown agency {args.agency!r}: see `emc registry list`")
    period = period_text(args.period)
    agency = agency.named_on(parse_period(period).last_day)
    settings = settings_from(args)

    def read_emc_side() -> tuple[WorkerClient, dict[str, dict]]:
        url = args.worker or _owner_url(settings, agency.code)
        client = WorkerClient(url, metrics_basic_auth(settings), timeout_s=args.timeout)
        return client, read_summaries(client, agency.code, period)

    # The worker classifies the period's dossiers while this process reads the export: the
    # two take about as long, and a bad export still stops the command (exit 2) at once.
    emc_side = _Background(read_emc_side)
    export = read_export(args.file)
    try:
        client, summaries = emc_side.result()
        result = emc_records(client, agency.code, period, export, summaries)
    except ExternalServiceError as exc:
        print(f"emc: error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.format == "json":
        sys.stdout.write(json.dumps({**reconciliation_json(result), "name": agency.name}, ensure_ascii=False, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_reconciliation_csv(result))
    else:
        sys.stdout.write(render_reconciliation_text(result, agency.name))
    return EXIT_AGREE if result.agrees else EXIT_DIFFER


def _owner_url(settings, agency: str) -> str:  # noqa: ANN001 - streams.settings.Settings
    """The advertised URL of the worker that owns the agency's state partition."""
    import asyncio

    from streams.sinks.keys import RedisKeys, as_text
    from streams.worker.ingest import state_partition_for

    partition = state_partition_for(agency, settings.partitions)

    async def read(client) -> bytes | None:  # noqa: ANN001
        return await client.hget(RedisKeys(settings.redis_prefix).workers, str(partition))

    url = asyncio.run(with_redis(settings, read))
    if url is None:
        raise ExternalServiceError(f"no worker has said it owns state partition {partition} (Redis {settings.redis_prefix}workers): "
                                   "are the workers running, with the same EMC_PARTITIONS?")
    return as_text(url)
