#!/usr/bin/env python3
"""CPU seconds per event of the state stage alone, without Kafka: batch decoding and the
StateApplier over the worker's real Faust RocksDB tables through `RowWriter`, store writes
included, changelog sends left out. Steadier than the whole pipeline on a loaded machine, and
what a change to the state stage should be measured with, before and after, in turns.

    .venv/bin/python benchmarks/state_stage.py [--events 100000] [--checkout DIR]

`--checkout` measures another copy of the code (e.g. `git archive COMMIT | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout))

    from faust.streams import _current_event

    from streams.domain.events import parse_event
    from streams.domain.registry import Registry
    from streams.errors import InvalidEvent
    from streams.settings import load_settings
    from streams.simulation.simulator import SimulationConfig, simulate
    from streams.worker.app import ROCKSDB_OPTIONS, _faust_app
    from streams.worker.changelog import ChangelogWriter, RowWriter
    from streams.worker.codec import decode_batch, encode_batch
    from streams.worker.ingest import state_partition_for
    from streams.worker.state import StateApplier, StateStores

    partitions = 4
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)  # fixed, so that every run applies the same events
    codes = [a.code for a in Registry.load().valid_on(now.date())]
    config = SimulationConfig(agencies=codes, dossiers=args.events // 6, seed=3, start=now - timedelta(days=60),
                              end=now, bad_share=0.0, heartbeat_every=timedelta(days=1))
    by_partition: dict[int, list] = {p: [] for p in range(partitions)}
    for message in simulate(config):
        try:
            event = parse_event(message.value, message.key)
        except InvalidEvent:
            continue
        events = by_partition[state_partition_for(event.agency_code, partitions)]
        events.append((len(events), event))
    # Batch messages of 500 events, the partitions taken in turns as the agent sees them.
    queues = {p: [encode_batch(p, events[i:i + 500]) for i in range(0, len(events), 500)]
              for p, events in by_partition.items()}
    payloads = [(p, queues[p][i]) for i in range(max(map(len, queues.values()))) for p in queues if i < len(queues[p])]
    total = sum(map(len, by_partition.values()))

    with tempfile.TemporaryDirectory(prefix="emc-state-stage-") as data_dir:
        app = _faust_app(load_settings({"broker": "kafka://127.0.0.1:1", "data_dir": data_dir}, environ={}))
        # The stores the checkout's StateStores has (the procedures store came with issue 14).
        names = tuple(store.name.replace("_", "-") for store in dataclasses.fields(StateStores))
        changelog = ChangelogWriter(app)
        tables = [app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes, options=dict(ROCKSDB_OPTIONS))
                  for name in names]
        for table in tables:  # opened before the clock starts, as a running worker has them open
            for partition in range(partitions):
                table.data._db_for_partition(partition)
        stores = StateStores(*(RowWriter(table, changelog) for table in tables))
        applier = StateApplier(stores)
        # Checkouts before the write batches wrote each row in RowWriter.set.
        write_stores = getattr(ChangelogWriter, "_write_stores", None)
        started, thread_started = time.process_time(), time.thread_time()
        for partition, payload in payloads:
            message = SimpleNamespace(message=SimpleNamespace(partition=partition))
            _current_event.set(lambda message=message: message)  # the agent's current event
            changelog.partition = partition  # how the state stage names it since issue 18 item 9
            applier.apply_batch(decode_batch(payload))
            if write_stores is not None:
                write_stores(changelog.pending)
            changelog.pending.clear()
        cpu_s, thread_cpu_s = time.process_time() - started, time.thread_time() - thread_started
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    # The process's CPU includes RocksDB's own threads (flushes, compactions); the main thread's
    # is the Python side alone, what a change to the apply path moves.
    print(f"state stage: {cpu_s * 1e6 / total:.1f} CPU µs/event ({thread_cpu_s * 1e6 / total:.1f} in the main thread) "
          f"over {total:,} events (load average {load}; {args.checkout})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
