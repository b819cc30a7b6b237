#!/usr/bin/env python3
"""Does poison slow the stream? The valid-event rate of one worker over the same valid events,
alone and mixed with poison (every kind of tests/support/poison.py: empty and null values, a
null key, not UTF-8, not JSON, schema breaks, unknown agency, key mismatch, over 64 KiB,
headers that are not UTF-8; plus some of 2 MiB). Numbers, not pass/fail; issue 18 asks that
the stream never slows below half its normal rate while poison flows.

    .venv/bin/python benchmarks/poison_rate.py [--events 20000] [--poison 10000] [--two-mib-every 1000]

Both runs drain a backlog published beforehand. The worker's /metrics is read every second:
`emc_events_total` without `result="dead_letter"` is the valid events applied, with it the
dead letters, which the worker counts only once the dead-letter topic acknowledged them. The
rate is taken over 5 s windows: the clean run's median window is the normal rate, and in the
poisoned run every window in which dead letters still arrived is compared with it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import settings_for, start_worker, stop  # noqa: E402

from streams.domain.registry import Registry  # noqa: E402
from streams.kafka.topics import ensure_topics  # noqa: E402
from streams.local.stack import start_redis, start_tansu  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.simulation.simulator import SimulationConfig, simulate  # noqa: E402
from tests.support.poison import TWO_MIB, poison  # noqa: E402

WINDOW_S = 5.0


def handled(settings: Settings) -> tuple[float, float]:
    """(valid events handled, dead letters acknowledged) from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    valid = dead = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "emc_events_total":
                if sample.labels.get("result") == "dead_letter":
                    dead += sample.value
                else:
                    valid += sample.value
    return valid, dead


def run(broker_port: int, redis_port: int, workdir: Path, name: str, messages: list, valid_total: int,
        poison_total: int) -> list[tuple[float, float, float]]:
    """(seconds since the first handled message, valid handled, dead letters) every second
    until every message is handled."""
    settings = settings_for(broker_port, redis_port, workdir, name)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20,
                             max_request_size=8 * 1024 * 1024)
    ensure_topics(settings)
    futures = [producer.send(settings.input_topic, key=key, value=value, headers=headers or [])
               for key, value, headers in messages]
    producer.flush()
    producer.close()
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:  # a backlog the broker did not take is not the one measured: say so, and stop
        raise SystemExit(f"{name}: {len(failed):,} of {len(messages):,} sends not acknowledged, e.g. {failed[0]!r}")
    worker = start_worker(settings, workdir / f"worker-{name}.log")
    samples: list[tuple[float, float, float]] = []
    try:
        while sum(handled(settings)) == 0:
            time.sleep(0.05)
        first = time.monotonic()
        while True:
            valid, dead = handled(settings)
            samples.append((time.monotonic() - first, valid, dead))
            if valid >= valid_total and dead >= poison_total:
                return samples
            time.sleep(1.0)
    finally:
        stop(worker)


def window_rates(samples: list[tuple[float, float, float]], poisoned: bool) -> list[float]:
    """Valid events/s over consecutive WINDOW_S windows (with `poisoned`, only those in which
    dead letters still arrived and valid events were left)."""
    rates = []
    start = samples[0]
    for sample in samples[1:]:
        if sample[0] - start[0] < WINDOW_S:
            continue
        flowing = sample[2] > start[2] if poisoned else True
        if flowing and sample[1] < samples[-1][1]:
            rates.append((sample[1] - start[1]) / (sample[0] - start[0]))
        start = sample
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="valid events (about)")
    parser.add_argument("--poison", type=int, default=10_000, help="poison messages mixed in")
    parser.add_argument("--two-mib-every", type=int, default=1000, help="every n-th poison message is 2 MiB")
    args = parser.parse_args()
    rng = random.Random(1)
    now = datetime.now(timezone.utc)
    agencies = [a.code for a in Registry.load().valid_on(now.date())]
    config = SimulationConfig(agencies=agencies, dossiers=args.events // 6, seed=5, bad_share=0.0,
                              start=now - timedelta(days=60), end=now)
    valid = [(m.key, m.value, None) for m in simulate(config)]
    bad = []
    for n in range(args.poison):
        key, value, headers = poison(n, rng.choice(agencies), rng)
        if args.two_mib_every and n % args.two_mib_every == args.two_mib_every - 1:
            value = b"{" + b" " * TWO_MIB + b"}"  # a 2 MiB value: over 64 KiB, dead-lettered whole
        bad.append((key, value, headers))
    mixed = valid + bad
    rng.shuffle(mixed)
    with tempfile.TemporaryDirectory(prefix="emc-poison-") as tmp:
        workdir = Path(tmp)
        broker, redis_server = start_tansu(workdir / "tansu"), start_redis(workdir / "redis")
        try:
            clean = run(broker.port, redis_server.port, workdir, "clean", valid, len(valid), 0)
            poisoned = run(broker.port, redis_server.port, workdir, "poisoned", mixed, len(valid), len(bad))
        finally:
            broker.stop()
            redis_server.stop()
    clean_windows, poisoned_windows = window_rates(clean, False), window_rates(poisoned, True)
    normal = statistics.median(clean_windows) if clean_windows else len(valid) / clean[-1][0]
    print(f"valid events: {len(valid):,}; poison mixed in: {len(bad):,} ({sum(1 for _, v, _ in bad if v and len(v) > TWO_MIB):,} of 2 MiB)")
    print(f"dead letters acknowledged: {poisoned[-1][2]:,.0f} of {len(bad):,}")
    print(f"valid events/s alone: {len(valid) / clean[-1][0]:,.0f} overall, {normal:,.0f} median of {len(clean_windows)} "
          f"windows of {WINDOW_S:.0f} s")
    print(f"valid events/s with poison: {len(valid) / poisoned[-1][0]:,.0f} overall "
          f"({len(valid) / poisoned[-1][0] / (len(valid) / clean[-1][0]):.0%} of the clean overall rate)")
    if poisoned_windows:
        print(f"while poison flowed ({len(poisoned_windows)} windows of {WINDOW_S:.0f} s): slowest {min(poisoned_windows):,.0f}/s "
              f"({min(poisoned_windows) / normal:.0%} of normal), median {statistics.median(poisoned_windows):,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
