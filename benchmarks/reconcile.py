#!/usr/bin/env python3
"""`emc reconcile` for one agency with 200,000 dossiers in a month (issue 15 item 4: within 30 s).

The dossiers are written directly into a RocksDB opened as the worker opens its table
partitions (rocksdict, raw mode, the worker's options), in the rows' own format
(`encode_dossier_row`: what the state stage writes), not loaded through a broker and worker:
at this machine's ~1,000 events/s that alone would take ten minutes. The read side is the
worker's own: `DossierEndpoint` behind `serve_http` on a free port, read over HTTP by the
reconcile client (`emc_records`), compared with a CSV export of the same 200,000 dossiers in
which 1 % disagree, and rendered as text.

    .venv/bin/python benchmarks/reconcile.py [--dossiers 200000] [--other 20000]

`--other`: dossiers of the same agency in other months, which the key range holds too.
Prints the seconds of the endpoint's answer, of the whole reconciliation, and dossiers/s.
"""

from __future__ import annotations

import argparse
import csv
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dossiers", type=int, default=200_000)
    parser.add_argument("--other", type=int, default=20_000)
    args = parser.parse_args()

    from prometheus_client import CollectorRegistry
    from rocksdict import Options, Rdict, WriteBatch

    from streams.domain.registry import Registry
    from streams.local.stack import free_port
    from streams.reports.reconcile import WorkerClient, emc_records, read_export, render_reconciliation_text
    from streams.settings import load_settings
    from streams.worker.dossier_api import ROUTE, DossierEndpoint
    from streams.worker.health import Health, serve_http
    from streams.worker.state import encode_dossier_row, row_key

    tz = timezone(timedelta(hours=7))
    with tempfile.TemporaryDirectory() as tmp:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(str(Path(tmp) / "dossiers-0.db"), options=options)
        export_path = Path(tmp) / "export.csv"
        started = time.perf_counter()
        with export_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["dossier_id", "procedure", "received_at", "channel", "resolved_at", "outcome", "classification"])
            batch, offset = WriteBatch(raw_mode=True), 0
            for month, count in ((datetime(2024, 12, 1, tzinfo=tz), args.dossiers), (datetime(2024, 10, 1, tzinfo=tz), args.other)):
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
        print(f"loaded {args.dossiers:,} dossiers of {PERIOD} and {args.other:,} of 2024-10 into RocksDB "
              f"and the export in {time.perf_counter() - started:.1f} s", flush=True)

        port = free_port()
        settings = load_settings({"metrics_port": port, "partitions": 1}, environ={})
        endpoint = DossierEndpoint(settings, Registry.load(), lambda partition: db)
        server = serve_http("127.0.0.1", port, CollectorRegistry(), Health(stall_after_s=60), routes={ROUTE: endpoint.handle})
        try:
            client = WorkerClient(f"http://127.0.0.1:{port}", timeout_s=120)
            started, cpu = time.perf_counter(), time.process_time()
            received = sum(1 for _ in client.lines(AGENCY, PERIOD, view="summary"))
            endpoint_s, endpoint_cpu_s = time.perf_counter() - started, time.process_time() - cpu
            print(f"endpoint, view=summary: {received:,} dossiers answered in {endpoint_s:.1f} s, {endpoint_cpu_s:.1f} CPU s "
                  f"(worker thread and reader; {received / endpoint_s:,.0f} dossiers/s)", flush=True)

            started, cpu = time.perf_counter(), time.process_time()
            export = read_export(export_path)
            result = emc_records(client, AGENCY, PERIOD, export)
            text = render_reconciliation_text(result, "Bộ Công Thương")
            total_s, total_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        finally:
            server.shutdown()
            server.server_close()
            db.close()
        kinds = {d.kind for d in result.discrepancies}
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"reconcile: {len(export):,} export rows against {result.emc_counts['resolved']:,} EMC dossiers, "
              f"{len(result.discrepancies):,} discrepancies ({', '.join(sorted(kinds))}), {len(text):,} characters of report, "
              f"in {total_s:.1f} s, {total_cpu_s:.1f} CPU s (target: 30 s)")
        return 0 if total_s <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
