"""Where a worker's busy samples go, per stage, from a py-spy `raw` (collapsed stacks) profile.

    py-spy record --format raw --subprocesses --pid PID --duration 60 --rate 100 -o FILE
    .venv/bin/python benchmarks/stage_profile.py FILE

Each stack is given to the first stage whose marker (a function or file name) it contains,
the markers taken in the order below: a stack inside the state applier that also reads a
store counts as "store reads", not as the applier. Idle samples are not in py-spy's output.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# (stage, markers): the first stage with a marker in the stack takes the sample.
# The periodic work of the state process comes first: its stacks also read stores and decode
# counter rows, which are the applier's only when no timer is on the stack. Every task runs
# under `supervised` (streams/worker/health.py), so a marker must name the task's own function.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/metrics (HTTP thread)", ("do_GET (streams/worker/health.py", "prometheus_client")),
    ("periodic: rankings loop", ("run_rankings (streams/worker/app.py",)),
    ("periodic: tick, agency readings", ("_read_agencies (streams/worker/app.py",)),
    ("periodic: tick, snapshot flush to Redis", ("flush (streams/sinks/redis_snapshots.py",)),
    ("periodic: tick, rest", ("_tick (streams/worker/app.py", "run_snapshots (streams/worker/app.py")),
    ("state: store reads", ("RowWriter.get ", "get_stored ", "(streams/worker/changelog.py:1", "_get (faust/stores/rocksdb")),
    ("state: changelog flush (RocksDB write batch, sends)", ("flush (streams/worker/changelog.py", "_write_stores", "_send (streams/worker/changelog.py")),
    ("state: classification", ("row_day_counts_one_pass", "row_day_counts_of_applied", "counts_of_applied", "classify")),
    ("state: row encode/decode", ("decode_dossier", "encode_dossier", "CounterRow.decode", "encode (streams/worker/state.py",
                                  "decode (streams/worker/state.py")),
    ("state: rest of apply_batch", ("apply_batch",)),
    ("state: batch decoding", ("decode_batch",)),
    ("ingest: validation/decode", ("validate_record", "parse_event", "decode_event")),
    ("ingest: batch encoding", ("encode_batch",)),
    ("ingest: consume/produce, rest", ("streams/worker/ingest.py", "ingest_process")),
    ("progress watch", ("_watch_progress (streams/worker/app.py", "streams/worker/progress.py")),
    ("other Redis writers (control, owners, bulletins)", ("streams/sinks/", "streams/kafka/control.py",
                                                          "streams/reports/bulletins.py")),
)
OTHER = "Faust, aiokafka, asyncio, other"


PERIODIC = "periodic: "  # the stages of the timers, whose share of the state process is reported apart


def in_child_process(stack: str) -> bool:
    """py-spy --subprocesses starts a child's stack with its parent's `process` frame, then its own."""
    frames = stack.split(";", 2)
    return len(frames) > 1 and frames[1].startswith("process ")


def stage_shares(lines: list[str]) -> tuple[Counter, int, Counter]:
    """(stage -> samples, all samples, the state (main) process's samples: "all" and per stage)."""
    shares: Counter = Counter()
    main: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        stage = next((name for name, markers in STAGES if any(m in stack for m in markers)), OTHER)
        shares[stage] += n
        if not in_child_process(stack):
            main["all"] += n
            main[stage] += n
    return shares, total, main


def report(path: Path) -> str:
    shares, total, main = stage_shares(path.read_text().splitlines())
    if not total:
        return f"py-spy: no busy sample in {path}"
    parts = [f"{name} {n * 100 / total:.1f} %" for name, n in shares.most_common()]
    periodic = sum(n for name, n in main.items() if name.startswith(PERIODIC))
    return (f"py-spy, {total:,} busy samples: " + "; ".join(parts)
            + f"\npy-spy, the state (main) process: {main['all']:,} busy samples ({main['all'] * 100 / total:.1f} %), "
            + f"of which periodic work (snapshot tick, rankings) {periodic * 100 / max(main['all'], 1):.1f} %")


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
