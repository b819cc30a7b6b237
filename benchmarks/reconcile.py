#!/usr/bin/env python3
"""`emc reconcile` for one agency with 200,000 dossiers in a month (issue 15 item 4: within 30 s).

The dossiers are written directly into a RocksDB opened as the worker opens its table
partitions (rocksdict, raw mode, the worker's options), in the rows' own format
(`encode_dossier_row`: what the state stage writes), not loaded through a broker and worker:
at this machine's ~1,000 events/s that alone would take ten minutes. The worker side is the
worker's own `DossierEndpoint` behind `serve_http`, in a process of its own (this script run
with `--serve`); the client side is the real `emc reconcile AGENCY PERIOD --file EXPORT
--worker URL` as a subprocess, against a CSV export of the same 200,000 dossiers in which 1 %
disagree (so 2,000 full records are read and rendered in the text report).

    .venv/bin/python benchmarks/reconcile.py [--dossiers 200000] [--other 20000] [--runs 1] [--data DIR]

`--other`: dossiers of the same agency in other months, which the key range holds too.
`--data DIR`: keep the RocksDB and the export there and reuse them on the next run with the
same sizes (loading 220,000 rows takes about a minute).
Prints, per run: dossiers, wall seconds of `emc reconcile`, the worker process's CPU seconds
during it, the CLI process's CPU seconds, and the machine's load average.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AGENCY = "BCT"
PERIOD = "2024-12"


def _events(n: int, month_start: datetime, offset: int):  # noqa: ANN202
    from streams.domain.events import DossierEvent
    from streams.domain.instants import us_of
    from streams.worker.state import AppliedEvent

    received = month_start + timedelta(minutes=(n * 7) % (27 * 24 * 60))
    resolved = received + timedelta(hours=30)
    dossier = f"HS-{month_start:%Y%m}-{n:07d}"
    channel = "online" if n % 3 else "in_person"
    in_person_fee = n % 5 == 0
    applied = [AppliedEvent(0, offset, DossierEvent(event_id=f"{dossier}-r", agency_code=AGENCY, type="received",
                                                    occurred_at_us=us_of(received), dossier_id=dossier,
                                                    procedure_code="2.000123", channel=channel, portal="national"))]
    applied.append(AppliedEvent(0, offset + 1, DossierEvent(
        event_id=f"{dossier}-f", agency_code=AGENCY, type="fee_paid", occurred_at_us=us_of(received + timedelta(hours=2)),
        dossier_id=dossier, method="in_person" if in_person_fee else "online", amount_vnd=50_000)))
    applied.append(AppliedEvent(0, offset + 2, DossierEvent(event_id=f"{dossier}-x", agency_code=AGENCY, type="result_returned",
                                                            occurred_at_us=us_of(resolved), dossier_id=dossier,
                                                            delivery="online")))
    mode = "offline" if channel != "online" else ("partial_online" if in_person_fee else "full_online")
    return dossier, applied, received, resolved, channel, mode


def _open_db(path: Path):  # noqa: ANN202 - rocksdict.Rdict
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(str(path), options=options)


def load(data: Path, dossiers: int, other: int) -> None:
    """The RocksDB of the agency's rows and the agency's CSV export, in `data` (reused when
    they were written with the same sizes)."""
    from rocksdict import WriteBatch

    from streams.worker.state import encode_dossier_row, row_key

    marker = data / f"loaded-{dossiers}-{other}"
    if marker.exists():
        print(f"reusing the rows and export in {data}", flush=True)
        return
    started = time.perf_counter()
    tz = timezone(timedelta(hours=7))
    db = _open_db(data / "dossiers-0.db")
    try:
        with (data / "export.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["dossier_id", "procedure", "received_at", "channel", "resolved_at", "outcome", "classification"])
            batch, offset = WriteBatch(raw_mode=True), 0
            for month, count in ((datetime(2024, 12, 1, tzinfo=tz), dossiers), (datetime(2024, 10, 1, tzinfo=tz), other)):
                for n in range(count):
                    dossier, applied, received, resolved, channel, mode = _events(n, month, offset)
                    offset += 3
                    batch.put(row_key(AGENCY, dossier).encode(), encode_dossier_row(applied))
                    if month.month == 12:
                        disagree = n % 100 == 0  # 1 % of the export says online where EMC has in person, or the reverse
                        writer.writerow([dossier, "2.000123", received.isoformat(), ("in_person" if channel == "online" else "online")
                                         if disagree else channel, resolved.isoformat(), "completed", "" if disagree else mode])
                    if len(batch) >= 10_000:
                        db.write(batch)
                        batch = WriteBatch(raw_mode=True)
            db.write(batch)
        db.flush()
    finally:
        db.close()
    marker.touch()
    print(f"loaded {dossiers:,} dossiers of {PERIOD} and {other:,} of 2024-10 into RocksDB "
          f"and the export in {time.perf_counter() - started:.1f} s", flush=True)


def serve(data: Path, port: int) -> int:
    """The worker side, in this process until stdin closes: the endpoint over the RocksDB."""
    from prometheus_client import CollectorRegistry

    from streams.domain.registry import Registry
    from streams.settings import load_settings
    from streams.worker.dossier_api import ROUTE, DossierEndpoint
    from streams.worker.health import Health, serve_http

    db = _open_db(data / "dossiers-0.db")
    settings = load_settings({"metrics_port": port, "partitions": 1}, environ={})
    endpoint = DossierEndpoint(settings, Registry.load(), lambda partition: db)
    server = serve_http("127.0.0.1", port, CollectorRegistry(), Health(stall_after_s=60), routes={ROUTE: endpoint.handle})
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()
        server.server_close()
        db.close()
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dossiers", type=int, default=200_000)
    parser.add_argument("--other", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="keep the rows and export here, and reuse them")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.port)

    from streams.local.stack import free_port

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        load(data, args.dossiers, args.other)
        port = free_port()
        worker = subprocess.Popen([sys.executable, __file__, "--serve", str(data), "--port", str(port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        worst_s = 0.0
        try:
            if worker.stdout is None or worker.stdout.readline().strip() != "ready":
                raise SystemExit("the worker process did not start")
            for run in range(1, args.runs + 1):
                report = Path(tmp) / "report.txt"
                worker_cpu, cli_cpu = _cpu_s(worker.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                with report.open("wb") as out:
                    cli = subprocess.run([sys.executable, "-m", "streams.cli", "reconcile", AGENCY, PERIOD,
                                          "--file", str(data / "export.csv"), "--worker", f"http://127.0.0.1:{port}",
                                          "--timeout", "300"], stdout=out, stderr=subprocess.PIPE, text=True, check=False)
                wall_s = time.perf_counter() - started
                worker_cpu_s = _cpu_s(worker.pid) - worker_cpu
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cli_cpu_s = (after.ru_utime - cli_cpu.ru_utime) + (after.ru_stime - cli_cpu.ru_stime)
                if cli.returncode != 1:  # 1 % of the export disagrees: exit 1
                    print(cli.stderr, file=sys.stderr)
                    raise SystemExit(f"emc reconcile exited {cli.returncode}, expected 1 (they differ)")
                text = report.read_text(encoding="utf-8")
                discrepancies = next(line for line in text.splitlines() if line.startswith("discrepancies:"))
                worst_s = max(worst_s, wall_s)
                print(f"run {run}: {args.dossiers:,} dossiers (+{args.other:,} in another month), {discrepancies}; "
                      f"wall {wall_s:.1f} s, worker CPU {worker_cpu_s:.1f} s, CLI CPU {cli_cpu_s:.1f} s "
                      f"(total {worker_cpu_s + cli_cpu_s:.1f} s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
                      f"{len(text):,} characters of report (target: 30 s wall)", flush=True)
        finally:
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(timeout=30)
        return 0 if worst_s <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
