#!/usr/bin/env python3
"""Throughput, latency and restart time of the pipeline, with the raw consume limit as the
yardstick, measured in one run on the local broker. Numbers, not pass/fail.

    .venv/bin/python benchmarks/throughput.py [--events 200000] [--restart-dossiers 1000000]

1. raw limit: a bare aiokafka consumer + orjson decode of the same events;
2. pipeline: one `emc worker` from its first handled event until every event is handled and
   the Redis snapshots equal the batch computation; the ratio of the two;
3. latency: p50/p99 from produce to Redis at a fixed background rate;
4. restart: with N dossiers in state, time from SIGKILL + restart until a new event is in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import redis
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.domain.events import parse_event  # noqa: E402
from streams.domain.registry import Registry  # noqa: E402
from streams.domain.snapshot import counts_from_hash  # noqa: E402
from streams.errors import InvalidEvent  # noqa: E402
from streams.kafka.producer import EventProducer  # noqa: E402
from streams.local.demo import worker_environment  # noqa: E402
from streams.local.stack import free_port, start_redis, start_tansu, wait_for_port  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from streams.simulation.simulator import SimulationConfig, simulate  # noqa: E402
from tests.support.oracle import batch_counts, nonzero  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    print(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


def settings_for(broker_port: int, redis_port: int, workdir: Path, run: str) -> Settings:
    return load_settings({
        "broker": f"kafka://127.0.0.1:{broker_port}", "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "metrics_port": free_port(), "data_dir": str(workdir / f"data-{run}"), "partitions": 4,
        "input_topic": f"bench.in.{run}", "dead_letter_topic": f"bench.dlq.{run}", "batch_topic": f"bench.batch.{run}",
        "app_id": f"bench-{run}", "redis_prefix": f"bench:{run}:", "snapshot_interval_s": 0.25,
    }, environ={})


WORKER_PEAKS_MIB: list[float] = []


def note_peak_rss(worker: subprocess.Popen) -> None:
    """The worker's own peak RSS (VmHWM), read before it stops. Not RUSAGE_CHILDREN: a child
    forked from this process counts this process's pages (a million generated messages) too."""
    try:
        for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                WORKER_PEAKS_MIB.append(int(line.split()[1]) / 1024)
    except OSError:
        pass


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=worker_environment(settings),
                               stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_for_port(settings.metrics_port, 60, process, "emc worker")
    return process


def events_handled(settings: Settings) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "emc_events_total")


def publish(settings: Settings, messages: list) -> None:
    started = time.monotonic()
    with EventProducer(settings) as producer:
        producer.send_messages(messages, progress=lambda n: progress("published", n, len(messages), started))
    print(file=sys.stderr)


async def raw_consume(settings: Settings, total: int) -> float:
    consumer = AIOKafkaConsumer(settings.input_topic, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for messages in batch.values():
                if started is None:
                    started = time.monotonic()
                for message in messages:
                    orjson.loads(message.value)
                seen += len(messages)
    finally:
        await consumer.stop()
    return total / (time.monotonic() - (started or time.monotonic()))


def measure_throughput(settings: Settings, workdir: Path, n_events: int) -> None:
    now = datetime.now(timezone.utc)
    codes = [a.code for a in Registry.load().valid_on(now.date())]
    say(f"generating ~{n_events:,} events ...")
    config = SimulationConfig(agencies=codes, dossiers=n_events // 6, seed=3, start=now - timedelta(days=60), end=now,
                              bad_share=0.0, heartbeat_every=timedelta(days=1))
    messages = [(m.key, m.value) for m in simulate(config)]
    publish(settings, messages)
    raw = asyncio.run(raw_consume(settings, len(messages)))
    say(f"raw limit (aiokafka + orjson decode): {raw:,.0f} events/s over {len(messages):,} events")

    worker = start_worker(settings, workdir / "worker-throughput.log")
    try:
        first = None
        while events_handled(settings) == 0:
            time.sleep(0.01)
        first = time.monotonic()
        while (handled := events_handled(settings)) < len(messages):
            progress("handled", int(handled), len(messages), first)
            time.sleep(0.25)
        print(file=sys.stderr)
        handled_at = time.monotonic()
        # Final Redis state: every agency's year hash equals the batch computation. Handling
        # is not the end: table writes queue changelog records the worker still has to send.
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        expected = {key: counts for key, counts in batch_counts(parse_all(messages)).items() if len(key[1]) == 4}
        while not redis_matches(client, settings.redis_prefix, expected):
            time.sleep(0.1)
        done = time.monotonic()
        rate = len(messages) / (done - first)
        say(f"pipeline (emc worker, to final Redis state): {rate:,.0f} events/s "
            f"(all handled after {handled_at - first:.1f} s, Redis final after {done - first:.1f} s)")
        say(f"ratio pipeline / raw: {rate / raw:.3f}")
        latency(settings)
    finally:
        stop(worker)


def stop(worker: subprocess.Popen) -> None:
    note_peak_rss(worker)
    worker.terminate()
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def parse_all(messages: list) -> list:
    events = []
    for key, value in messages:
        try:
            events.append(parse_event(value, key))
        except InvalidEvent:
            pass
    return events


def redis_matches(client: redis.Redis, prefix: str, expected: dict) -> bool:
    with client.pipeline(transaction=False) as pipe:
        for agency, period in expected:
            pipe.hgetall(f"{prefix}agency:{agency}:{period}")
        found = pipe.execute()
    return all(nonzero(counts_from_hash(h)) == counts for h, counts in zip(found, expected.values()))


def latency(settings: Settings, rate_per_s: int = 500, seconds: int = 20) -> None:
    """Background traffic at a fixed rate; every 10th event is a probe on a unique day, whose
    Redis key a second thread watches while the traffic is still being sent."""
    codes = [a.code for a in Registry.load().valid_on(datetime.now(timezone.utc).date())]
    pending: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    sending = threading.Event()
    sending.set()

    def watch() -> None:
        client = redis.Redis.from_url(settings.redis_url)
        deadline = None
        while sending.is_set() or (pending and time.monotonic() < (deadline := deadline or time.monotonic() + 60)):
            with lock:
                keys = list(pending.items())
            if keys:
                with client.pipeline(transaction=False) as pipe:
                    for key, _ in keys:
                        pipe.exists(key)
                    found = pipe.execute()
                now = time.monotonic()
                with lock:
                    for (key, sent), exists in zip(keys, found):
                        if exists:
                            latencies.append(now - sent)
                            del pending[key]
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    base = datetime(2001, 1, 1, 5, tzinfo=timezone.utc)
    with EventProducer(settings) as producer:
        started = time.monotonic()
        for i in range(rate_per_s * seconds):
            agency = codes[i % len(codes)]
            probe = i % 10 == 0
            at = base + timedelta(days=i // 10) if probe else datetime.now(timezone.utc)
            event = {"schema": "emc.dossier-event.v1", "event_id": f"lat-{i}", "agency_code": agency,
                     "dossier_id": f"lat-{i}", "type": "received", "channel": "online", "procedure_code": "1",
                     "occurred_at": at.isoformat().replace("+00:00", "Z")}
            producer.send(agency.encode(), orjson.dumps(event))
            if probe:
                producer.flush()
                local_day = at.astimezone(timezone(timedelta(hours=7))).date()
                with lock:
                    pending[f"{settings.redis_prefix}agency:{agency}:{local_day}"] = time.monotonic()
            time.sleep(max(0.0, started + (i + 1) / rate_per_s - time.monotonic()))
    sending.clear()
    watcher.join()
    latencies.sort()
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        say(f"latency produce -> Redis at {rate_per_s} ev/s: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
            f"({len(latencies)} probes, {len(pending)} not seen within 60 s; Redis polled every ~5 ms)")


def measure_restart(settings: Settings, workdir: Path, dossiers: int) -> None:
    codes = [a.code for a in Registry.load().valid_on(datetime.now(timezone.utc).date())]
    say(f"restart: loading {dossiers:,} dossiers into state ...")
    at = "2025-03-03T03:00:00Z"
    messages = []
    for i in range(dossiers):
        agency = codes[i % len(codes)]
        messages.append((agency.encode(), orjson.dumps({
            "schema": "emc.dossier-event.v1", "event_id": f"r{i}", "agency_code": agency, "dossier_id": f"r{i}",
            "type": "received", "channel": "online", "procedure_code": "1", "occurred_at": at})))
    publish(settings, messages)
    worker = start_worker(settings, workdir / "worker-restart.log")
    started = time.monotonic()
    while (handled := events_handled(settings)) < dossiers:
        progress("loaded", int(handled), dossiers, started)
        time.sleep(1)
    print(file=sys.stderr)
    time.sleep(3)  # let the changelog and RocksDB settle and offsets commit
    size = sum(f.stat().st_size for f in Path(settings.data_dir).rglob("*") if f.is_file())
    note_peak_rss(worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed = time.monotonic()
    worker = start_worker(settings, workdir / "worker-restart.log")
    probe = {"schema": "emc.dossier-event.v1", "event_id": "probe", "agency_code": codes[0], "dossier_id": "probe",
             "type": "received", "channel": "online", "procedure_code": "1", "occurred_at": "2001-02-03T03:00:00Z"}
    with EventProducer(settings) as producer:
        producer.send(codes[0].encode(), orjson.dumps(probe))
    client = redis.Redis.from_url(settings.redis_url)
    while not client.exists(f"{settings.redis_prefix}agency:{codes[0]}:2001-02-03"):
        time.sleep(0.05)
    say(f"restart with {dossiers:,} dossiers in state ({size / 2**20:,.0f} MiB on disk): "
        f"{time.monotonic() - killed:.1f} s from SIGKILL to a new event in Redis")
    stop(worker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--restart-dossiers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emc-bench-") as tmp:
        workdir = Path(tmp)
        broker, redis_server = start_tansu(workdir / "tansu"), start_redis(workdir / "redis")
        try:
            say(f"machine: {os.cpu_count()} cores; broker tansu :{broker.port}; redis :{redis_server.port}")
            measure_throughput(settings_for(broker.port, redis_server.port, workdir, "tp"), workdir, args.events)
            if args.restart_dossiers:
                measure_restart(settings_for(broker.port, redis_server.port, workdir, "rs"), workdir, args.restart_dossiers)
            say(f"peak RSS of a worker: {max(WORKER_PEAKS_MIB, default=0):,.0f} MiB (VmHWM)")
        finally:
            redis_server.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
