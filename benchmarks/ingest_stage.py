#!/usr/bin/env python3
"""CPU µs per event of the ingest stage's own work, without Kafka: validating each record
(`validate_record`: bytes to a typed event, or a dead letter) and encoding the good ones into
batch messages (`encode_batch`), over the simulator's events (with its share of bad ones), and
the dead-letter path alone over poison (tests/support/poison.py, with values of 2 MiB).
Steadier than the whole pipeline on a loaded machine: measure a change to ingest with it,
before and after, in turns.

    .venv/bin/python benchmarks/ingest_stage.py [--events 100000] [--repeat 5] [--checkout DIR]

`--checkout` measures another copy of the code (e.g. `git archive COMMIT | tar -x -C DIR`).
Each figure is the best of `--repeat` passes (CPU time of this process, `time.process_time`).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def best_cpu_us(repeat: int, count: int, work) -> float:
    """The least CPU µs per item of `repeat` passes of `work()` over `count` items."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="simulated messages (about)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--poison", type=int, default=2_000, help="poison messages for the dead-letter figure")
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout))
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support, from this checkout

    from streams.domain.registry import Registry
    from streams.simulation.simulator import SimulationConfig, simulate
    from streams.worker import codec, ingest
    from streams.worker.ingest import DeadLetter, state_partition_for
    from tests.support.poison import TWO_MIB, poison

    now = datetime(2026, 11, 30, tzinfo=timezone.utc)  # fixed, so that every run sees the same events
    registry = Registry.load()
    codes = [a.code for a in registry.valid_on(now.date())]
    config = SimulationConfig(agencies=codes, dossiers=args.events // 6, seed=3, start=now - timedelta(days=60),
                              end=now, heartbeat_every=timedelta(days=1))
    messages = [(m.key, m.value) for m in simulate(config)]
    rng = random.Random(1)
    bad = []
    for n in range(args.poison):
        key, value, headers = poison(n, rng.choice(codes), rng)
        if n % 100 == 99:
            value = b"{" + b" " * TWO_MIB + b"}"
        bad.append((key, value, headers))

    # What the stage calls: since the typed decode, the event's fields (its wire form);
    # before, the event itself (a checkout of then).
    validate_record = getattr(ingest, "validate_record_fields", ingest.validate_record)
    encode_batch = getattr(codec, "encode_batch_of_wires", codec.encode_batch)
    agency_of = (lambda event: event[1]) if hasattr(ingest, "validate_record_fields") else (lambda event: event.agency_code)

    def validate_all() -> list:
        return [validate_record(registry, key, value, "in", 0, offset) for offset, (key, value) in enumerate(messages)]

    outcomes = validate_all()
    events = [(offset, o) for offset, o in enumerate(outcomes) if not isinstance(o, DeadLetter)]
    partitions = 4
    by_target: dict[int, list] = {}
    for offset, event in events:
        by_target.setdefault(state_partition_for(agency_of(event), partitions), []).append((offset, event))

    def encode_all() -> None:
        for chunk in by_target.values():
            for start in range(0, len(chunk), 1000):
                encode_batch(0, chunk[start:start + 1000])

    def dead_letter_all() -> None:
        for offset, (key, value, headers) in enumerate(bad):
            validate_record(registry, key, value, "in", 0, offset, None, headers)

    validation = best_cpu_us(args.repeat, len(messages), validate_all)
    encoding = best_cpu_us(args.repeat, len(events), encode_all)
    dead = best_cpu_us(args.repeat, len(bad), dead_letter_all)
    two_mib = sum(1 for _, v, _ in bad if v and len(v) > TWO_MIB)
    print(f"{len(messages):,} messages ({len(messages) - len(events):,} bad), load average {os.getloadavg()[0]:.1f}")
    print(f"validation: {validation:.2f} CPU µs per message")
    print(f"batch encoding: {encoding:.2f} CPU µs per event")
    print(f"dead letters: {dead:.1f} CPU µs per poison message ({len(bad):,}, {two_mib} of 2 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
