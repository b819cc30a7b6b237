#!/usr/bin/env python3
"""Does poison slow the stream? The valid-event rate of one worker over the same valid events,
alone and mixed with as many poison messages (every kind of tests/support/poison.py, 2 MiB one
included). Numbers, not pass/fail; issue 18 asks that it stays above half.

    .venv/bin/python benchmarks/poison_rate.py [--events 60000] [--poison-share 0.5]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import events_handled, settings_for, start_worker, stop  # noqa: E402

from streams.domain.registry import Registry  # noqa: E402
from streams.kafka.topics import ensure_topics  # noqa: E402
from streams.local.stack import start_redis, start_tansu  # noqa: E402
from streams.simulation.simulator import SimulationConfig, simulate  # noqa: E402
from tests.support.poison import poison  # noqa: E402


def run(broker_port: int, redis_port: int, workdir: Path, name: str, messages: list) -> float:
    """Valid events per second from the worker's first handled message until all are handled."""
    settings = settings_for(broker_port, redis_port, workdir, name)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20, max_request_size=8 * 1024 * 1024)
    ensure_topics(settings)
    for key, value, headers in messages:
        producer.send(settings.input_topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()
    total = len(messages)
    worker = start_worker(settings, workdir / f"worker-{name}.log")
    try:
        while events_handled(settings) == 0:
            time.sleep(0.01)
        first = time.monotonic()
        while events_handled(settings) < total:
            time.sleep(0.1)
        seconds = time.monotonic() - first
    finally:
        stop(worker)
    valid = sum(1 for _, _, h in messages if h is None)
    return valid / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="valid events")
    parser.add_argument("--poison-share", type=float, default=0.5, help="poison messages per valid event")
    args = parser.parse_args()
    rng = random.Random(1)
    now = datetime.now(timezone.utc)
    agencies = [a.code for a in Registry.load().valid_on(now.date())]
    config = SimulationConfig(agencies=agencies, dossiers=args.events // 6, seed=5, bad_share=0.0,
                              start=now - timedelta(days=60), end=now)
    valid = [(m.key, m.value, None) for m in simulate(config)]
    bad = [(k, v, h or []) for k, v, h in (poison(n, rng.choice(agencies), rng) for n in range(int(len(valid) * args.poison_share)))]
    mixed = valid + bad
    rng.shuffle(mixed)
    with tempfile.TemporaryDirectory(prefix="emc-poison-") as tmp:
        workdir = Path(tmp)
        broker, redis_server = start_tansu(workdir / "tansu"), start_redis(workdir / "redis")
        try:
            clean = run(broker.port, redis_server.port, workdir, "clean", valid)
            poisoned = run(broker.port, redis_server.port, workdir, "poisoned", mixed)
        finally:
            broker.stop()
            redis_server.stop()
    print(f"valid events: {len(valid):,}; poison mixed in: {len(bad):,}")
    print(f"valid events/s alone: {clean:,.0f}; with poison: {poisoned:,.0f} ({poisoned / clean:.0%} of the clean rate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
