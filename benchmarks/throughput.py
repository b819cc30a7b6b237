#!/usr/bin/env python3
"""Throughput, latency and restart time of the pipeline, with the raw consume limit as the
yardstick, measured in one run on the local broker. Numbers, not pass/fail.

    .venv/bin/python benchmarks/throughput.py [--events 200000] [--restart-dossiers 1000000] [--no-scale-out]

1. raw limit: a bare aiokafka consumer + orjson decode of the same events;
2. pipeline: one `emc worker` from its first handled event until every event is handled and
   the Redis snapshots equal the batch computation; the ratio of the two, in wall-clock time
   and in CPU seconds per event (the worker's processes, from /proc, against the raw
   consumer's own CPU in the same run: the figure a shared, loaded machine does not blur);
3. latency: p50/p99 from produce to Redis at a fixed background rate;
4. scale-out: the same backlog (on its own topic) drained by two workers of one application
   versus the one worker of step 2;
5. restart: with N dossiers in state, time from SIGKILL + restart until a new event is in Redis.
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
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import redis
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stage_profile import report as stage_report  # noqa: E402
from streams.domain.events import parse_event  # noqa: E402
from streams.domain.registry import Registry  # noqa: E402
from streams.domain.snapshot import counts_from_hash  # noqa: E402
from streams.errors import InvalidEvent  # noqa: E402
from streams.kafka.producer import EventProducer  # noqa: E402
from streams.local.demo import worker_environment  # noqa: E402
from streams.local.stack import free_port, start_redis, start_tansu, wait_for_port  # noqa: E402
from streams.security.keyring_file import keyring_for_agencies, save_keyring, signing_keyring  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from streams.simulation.simulator import SimulationConfig, simulate  # noqa: E402
from tests.support.oracle import batch_counts, nonzero  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def progress(label: str, done: int, total: int, started: float, extra: str = "") -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    print(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f}/s{'; ' + extra if extra else ''})  ",
          end="", file=sys.stderr, flush=True)


INGEST_PROCESSES: list[int] = []  # --ingest-processes, for every worker of the run (empty: the default)


def settings_for(broker_port: int, redis_port: int, workdir: Path, run: str, data_dir: str | None = None,
                 auth: str = "off") -> Settings:
    """Settings of one benchmark run; workers of one run share everything but the state
    directory (`data_dir`) and the /metrics port (and, with `auth`, the run's keyring)."""
    signed = {}
    if auth != "off":  # every event signed by its agency's key, checked by the worker
        keyring_path = workdir / f"keyring-{run}.json"
        if not keyring_path.exists():
            save_keyring(keyring_for_agencies([a.code for a in Registry.load()], (int(time.time()) - 3600) * 1_000_000),
                         keyring_path)
        signed = {"auth": auth, "keyring": str(keyring_path)}
    return load_settings({
        **signed,
        "broker": f"kafka://127.0.0.1:{broker_port}", "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "metrics_port": free_port(), "data_dir": str(workdir / f"data-{data_dir or run}"), "partitions": 4,
        "input_topic": f"bench.in.{run}", "dead_letter_topic": f"bench.dlq.{run}", "batch_topic": f"bench.batch.{run}",
        "app_id": f"bench-{run}", "redis_prefix": f"bench:{run}:", "snapshot_interval_s": 0.25,
        **({"ingest_processes": INGEST_PROCESSES[0]} if INGEST_PROCESSES else {}),
    }, environ={})


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_tree_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system) of a process and of all its descendants, alive ones read
    directly and exited ones through their parent's cutime/cstime (fields 14-17 of
    /proc/PID/stat). A process that exits between two reads is lost unless its parent waited."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we listed /proc
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS_PER_S
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def workers_cpu_s(workers: list[subprocess.Popen]) -> float:
    return sum(process_tree_cpu_s(worker.pid) for worker in workers)


def own_cpu_s() -> float:
    """This process's CPU seconds (all threads), for the raw consumer that runs in it."""
    return time.process_time()


def machine_load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


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


def spawn_worker(settings: Settings, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=worker_environment(settings),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    process = spawn_worker(settings, log)
    wait_for_port(settings.metrics_port, 60, process, "emc worker")
    return process


def events_handled(settings: Settings) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "emc_events_total")


def drain(worker_settings: list[Settings], workers: list[subprocess.Popen], messages: list,
          redis_prefix: str, redis_url: str, on_first: Callable[[], None] = lambda: None) -> tuple[float, float, list[float]]:
    """Wait until every message is handled and Redis equals their batch computation. Returns (events/s, CPU s per
    event of the workers, events handled by each worker), timed from the first handled event.

    The end is watched in Redis, which costs the workers nothing; their /metrics is read only
    every few seconds for the progress line: rendering it costs a worker ~20 ms of CPU, which
    at a 0.25 s poll was an eighth of a loaded worker's samples (py-spy)."""
    while sum(events_handled(s) for s in worker_settings) == 0:
        time.sleep(0.01)
    first, cpu_first = time.monotonic(), workers_cpu_s(workers)
    on_first()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    expected = {key: counts for key, counts in batch_counts(parse_all(messages)).items() if len(key[1]) == 4}
    polled = first
    while not (redis_matches(client, redis_prefix, expected)
               and sum(events_handled(s) for s in worker_settings) >= len(messages)):
        if time.monotonic() - polled >= 5:
            polled = time.monotonic()
            handled = sum(events_handled(s) for s in worker_settings)
            cpu = workers_cpu_s(workers) - cpu_first
            progress("handled", int(handled), len(messages), first,
                     f"worker CPU {cpu * 1e6 / max(handled, 1):,.0f} µs/event")
        time.sleep(0.25)
    elapsed, cpu = time.monotonic() - first, workers_cpu_s(workers) - cpu_first
    print(file=sys.stderr)
    return len(messages) / elapsed, cpu / len(messages), [events_handled(s) for s in worker_settings]


def publish(settings: Settings, messages: list) -> None:
    started = time.monotonic()
    with EventProducer(settings, signing_keyring(settings)) as producer:
        producer.send_messages(messages, progress=lambda n: progress("published", n, len(messages), started))
    print(file=sys.stderr)


async def raw_consume(settings: Settings, total: int) -> tuple[float, float]:
    """(events/s, CPU seconds per event) of a bare consumer, both from its first record."""
    consumer = AIOKafkaConsumer(settings.input_topic, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    seen, started, cpu_started = 0, None, 0.0
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for messages in batch.values():
                if started is None:
                    started, cpu_started = time.monotonic(), own_cpu_s()
                for message in messages:
                    orjson.loads(message.value)
                seen += len(messages)
            if started is not None:
                progress("raw consume", seen, total, started)
    finally:
        cpu = own_cpu_s() - cpu_started
        await consumer.stop()
    print(file=sys.stderr)
    return total / (time.monotonic() - (started or time.monotonic())), cpu / total


def benchmark_messages(n_events: int) -> list:
    now = datetime.now(timezone.utc)
    codes = [a.code for a in Registry.load().valid_on(now.date())]
    say(f"generating ~{n_events:,} events ...")
    config = SimulationConfig(agencies=codes, dossiers=n_events // 6, seed=3, start=now - timedelta(days=60), end=now,
                              bad_share=0.0, heartbeat_every=timedelta(days=1))
    return [(m.key, m.value) for m in simulate(config)]


def py_spy(pid: int, seconds: int, output: Path) -> subprocess.Popen | None:
    """py-spy sampling a worker and its children (busy samples only) for `seconds`."""
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        say("py-spy is not installed in this environment: no profile")
        return None
    return subprocess.Popen([str(binary), "record", "--format", "raw", "--subprocesses", "--nonblocking", "--rate", "100",
                             "--duration", str(seconds), "--pid", str(pid), "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure_throughput(settings: Settings, workdir: Path, messages: list, profile_s: int = 0) -> tuple[float, float]:
    """One worker on the backlog; returns its (events/s, CPU s per event). With `profile_s`,
    py-spy samples the worker for that long from its first handled event, and the shares of
    its busy samples by stage are printed (benchmarks/stage_profile.py)."""
    publish(settings, messages)
    say(f"raw consume ({machine_load()}) ...")
    raw, raw_cpu = asyncio.run(raw_consume(settings, len(messages)))
    say(f"raw limit (aiokafka + orjson decode): {raw:,.0f} events/s, {raw_cpu * 1e6:.2f} CPU µs/event "
        f"over {len(messages):,} events")
    say(f"one worker ({machine_load()}) ...")
    worker = start_worker(settings, workdir / "worker-throughput.log")
    profile_path = workdir / "py-spy-throughput.txt"
    profiler: list[subprocess.Popen | None] = []

    def start_profile() -> None:
        if profile_s:
            profiler.append(py_spy(worker.pid, profile_s, profile_path))

    try:
        rate, cpu, _ = drain([settings], [worker], messages, settings.redis_prefix, settings.redis_url, start_profile)
        for process in filter(None, profiler):
            process.wait()
            say(stage_report(profile_path))
        say(f"pipeline (emc worker, to final Redis state): {rate:,.0f} events/s, {cpu * 1e6:,.1f} worker CPU µs/event "
            f"(Redis final after {len(messages) / rate:.1f} s; {machine_load()})")
        say(f"ratio pipeline / raw: {rate / raw:.3f} wall-clock, {raw_cpu / cpu:.3f} CPU "
            f"(raw CPU per event / worker CPU per event)")
        latency(settings)
    finally:
        stop(worker)
    return rate, cpu


def measure_scale_out(broker_port: int, redis_port: int, workdir: Path, messages: list,
                      one_rate: float, one_cpu: float) -> None:
    """The same backlog, on a topic of its own, drained by two workers of one application."""
    members = [settings_for(broker_port, redis_port, workdir, "so", data_dir=f"so-{i}") for i in range(2)]
    publish(members[0], messages)
    say(f"two workers ({machine_load()}) ...")
    # Both started before either waits, so they join the group together.
    workers = [spawn_worker(s, workdir / f"worker-scale-out-{i}.log") for i, s in enumerate(members)]
    try:
        for settings, worker in zip(members, workers):
            wait_for_port(settings.metrics_port, 60, worker, "emc worker")
        rate, cpu, shares = drain(members, workers, messages, members[0].redis_prefix,
                                                 members[0].redis_url)
        say(f"scale-out: two workers {rate:,.0f} events/s, {cpu * 1e6:,.1f} worker CPU µs/event (both together), "
            f"handled {' + '.join(f'{n:,.0f}' for n in shares)}; {rate / one_rate:.2f} times one worker's rate, "
            f"{cpu / one_cpu:.2f} times its CPU per event ({machine_load()})")
    finally:
        for worker in workers:
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
    with EventProducer(settings, signing_keyring(settings)) as producer:  # signed under --auth, or dead-lettered
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
    else:
        say(f"latency produce -> Redis at {rate_per_s} ev/s: no probe reached Redis within 60 s ({len(pending)} sent)")


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
    parser.add_argument("--scale-out", action=argparse.BooleanOptionalAction, default=True,
                        help="also drain the same backlog with two workers")
    parser.add_argument("--py-spy", type=int, default=60, metavar="SECONDS",
                        help="profile the one worker for this long from its first event (0: no profile)")
    parser.add_argument("--ingest-processes", type=int, metavar="N",
                        help="EMC_INGEST_PROCESSES of every worker (default: the worker's default, 1; "
                             "0 runs a worker in one process, to compare)")
    parser.add_argument("--auth", choices=["off", "audit", "enforce"], default="off",
                        help="check event signatures in the throughput run (the producer signs every event)")
    args = parser.parse_args()
    if args.ingest_processes is not None:
        INGEST_PROCESSES.append(args.ingest_processes)
    with tempfile.TemporaryDirectory(prefix="emc-bench-") as tmp:
        workdir = Path(tmp)
        broker, redis_server = start_tansu(workdir / "tansu"), start_redis(workdir / "redis")
        try:
            say(f"machine: {os.cpu_count()} cores; broker tansu :{broker.port}; redis :{redis_server.port}")
            messages = benchmark_messages(args.events)
            rate, cpu = measure_throughput(settings_for(broker.port, redis_server.port, workdir, "tp", auth=args.auth), workdir, messages,
                                            args.py_spy)
            if args.scale_out:
                measure_scale_out(broker.port, redis_server.port, workdir, messages, rate, cpu)
            if args.restart_dossiers:
                measure_restart(settings_for(broker.port, redis_server.port, workdir, "rs"), workdir, args.restart_dossiers)
            say(f"peak RSS of a worker: {max(WORKER_PEAKS_MIB, default=0):,.0f} MiB (VmHWM)")
        finally:
            redis_server.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
