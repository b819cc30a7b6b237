#!/usr/bin/env python3
"""Chaos soak: the faults of issue 18 at random under a steady load, then every count checked.
Numbers, not pass/fail.

    .venv/bin/python benchmarks/chaos.py [--minutes 20] [--rate 300] [--fault-every 45] [--seed 1]
                                         [--broker-minutes 5] [--broker-rate 40] [--broker-linger-ms 5000]
                                         [--broker-fetch-wait-ms 2000]

Two phases, each with one worker, its own Tansu broker and redis-server, and a producer thread
sending simulated events at a steady rate:

1. `--minutes` on a broker with memory storage, at `--rate` events/s. Every `--fault-every`
   seconds (±50 %) one fault, each kind once per round in random order: the worker SIGKILLed
   and started again; Redis stopped and started again 5-60 s later with its data; Redis
   killed and started empty; a burst of 1,000 poison messages.
2. `--broker-minutes` (0: skipped) on a broker whose log lives in S3 (moto_server), at
   `--broker-rate` events/s, with one fault: the broker killed and started again 5 s to
   `--broker-down-max` (30 s) later with its log. A broker on memory storage loses its log
   when killed, so this fault needs S3. Tansu's S3 engine lists every record object of a
   partition in each Fetch and answers empty when that outlasts the Fetch's max wait (README
   "Reliability", benchmarks/tansu_s3_fetch.py), so in this phase the load producer lingers
   `--broker-linger-ms` (5 s: fewer, larger objects) and the worker fetches with
   EMC_STATE_FETCH_MAX_WAIT_MS=`--broker-fetch-wait-ms` (2 s); each fault line prints the
   objects of each topic's largest partition.

After each fault, the time to recover: from the fault's end until a probe event sent at that
moment is in Redis (and, after a Redis wipe, until every agency hash is back). At the end of
each phase the load stops and every agency/period count is compared with the batch
computation over everything sent: events lost must be 0; dead letters vs poison sent.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import events_handled, settings_for, start_worker, stop  # noqa: E402

from streams.domain.registry import Registry  # noqa: E402
from streams.domain.snapshot import counts_from_hash  # noqa: E402
from streams.local.stack import RunningProcess, start_redis, start_s3, start_tansu  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.simulation.simulator import SimulationConfig, simulate  # noqa: E402
from tests.support.oracle import batch_counts_of_messages, nonzero  # noqa: E402
from tests.support.poison import poison  # noqa: E402

PROBE_PERIOD = "2020-01-01"  # a day no simulated event falls on: probes count alone there


def say(text: str) -> None:
    print(text, flush=True)


class Load(threading.Thread):
    """Sends simulated events at a steady rate and keeps every one sent, for the oracle."""

    def __init__(self, settings: Settings, agencies: list[str], rate: float, seconds: float, seed: int,
                 linger_ms: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        now = datetime.now(timezone.utc)
        # The simulator builds its whole timeline first: size it to the run (~6 events a dossier).
        self.config = SimulationConfig(agencies=agencies, dossiers=int(rate * seconds / 5) + 1000, seed=seed, bad_share=0.0,
                                       start=now - timedelta(days=90), end=now)
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.failed = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.producer, self.prober = (
            KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=linger, retries=1000,
                          max_in_flight_requests_per_connection=1, delivery_timeout_ms=300_000, request_timeout_ms=20_000,
                          max_request_size=8 * 1024 * 1024, batch_size=1024 * 1024)
            for linger in (linger_ms, 0))  # probes go out at once: their wait is the recovery time

    def _failed(self, _exc: Exception) -> None:
        with self.lock:
            self.failed += 1

    def send(self, key: bytes | None, value: bytes | None, headers: list | None = None, keep: bool = True,
             probe: bool = False) -> None:
        producer = self.prober if probe else self.producer
        producer.send(self.settings.input_topic, key=key, value=value, headers=headers or []).add_errback(self._failed)
        if keep:
            with self.lock:
                self.sent.append((key, value))

    def run(self) -> None:
        started = time.monotonic()
        for n, message in enumerate(simulate(self.config)):
            if self.stopping.is_set():
                break
            wait = started + n / self.rate - time.monotonic()
            if wait > 0:  # read the clock once: between two reads the wait can turn negative
                time.sleep(wait)
            self.send(message.key, message.value)

    def finish(self) -> None:
        self.stopping.set()
        self.join()
        for producer in (self.producer, self.prober):
            producer.flush(timeout=600)
            producer.close()


class Chaos:
    """One phase: a broker (memory or S3 storage), Redis, a worker, the load, and `faults`
    (names of the fault methods below) injected at random for `minutes`."""

    def __init__(self, args: argparse.Namespace, workdir: Path, storage: str, faults: list[str], minutes: float,
                 rate: float, linger_ms: int) -> None:
        self.args, self.workdir, self.minutes, self.rate = args, workdir, minutes, rate
        self.storage = storage
        self.rng = random.Random(args.seed)
        self.s3 = start_s3(workdir / "s3") if storage == "s3" else None
        self.broker = start_tansu(workdir / "tansu", s3=self.s3)
        self.redis = start_redis(workdir / "redis")
        self.settings = settings_for(self.broker.port, self.redis.port, workdir, f"chaos{args.seed}{storage}")
        if self.s3 is not None:  # the worker's Faust consumer must outwait Tansu's listing (README "Reliability")
            self.settings = dataclasses.replace(self.settings, state_fetch_max_wait_ms=args.broker_fetch_wait_ms)
        self.client = redis.Redis(port=self.redis.port, decode_responses=True)
        registry = Registry.load()
        self.agencies = [a.code for a in registry.valid_on(datetime.now(timezone.utc).date())]
        self.probe_agency = self.agencies[0]
        self.faults = [getattr(self, name) for name in faults]
        self.worker = start_worker(self.settings, workdir / "worker.log")
        self.load = Load(self.settings, self.agencies[1:], rate, minutes * 60, args.seed, linger_ms)
        self.probes = 0
        self.poison_sent = 0
        self.recoveries: dict[str, list[float]] = defaultdict(list)
        self.supervisor_restarts = 0
        self.agency_keys_before = 0

    # -- faults --------------------------------------------------------------------------------
    def kill_worker(self) -> str:
        self.worker.kill()
        self.worker.wait()
        self.worker = start_worker(self.settings, self.workdir / "worker.log")
        return "worker SIGKILL"

    def restart_broker(self) -> str:
        down = self.rng.uniform(5, self.args.broker_down_max)
        self.broker.kill()
        time.sleep(down)
        self.broker.start_again()
        return f"broker down {down:.0f} s"

    def wipe_redis(self) -> str:
        _wipe(self.redis, self.workdir / "redis")
        return "redis back empty"

    def stop_redis(self) -> str:
        down = self.rng.uniform(5, 60)
        self.redis.stop()  # SIGTERM: redis-server writes its append-only file and exits
        time.sleep(down)
        self.redis.start_again()
        return f"redis down {down:.0f} s, back with its data"

    def poison_burst(self) -> str:
        for _ in range(1000):
            key, value, headers = poison(self.poison_sent, self.rng.choice(self.agencies), self.rng)
            self.load.send(key, value, headers, keep=False)
            self.poison_sent += 1
        return "1000 poison messages"

    # -- measuring -----------------------------------------------------------------------------
    def probe_recovery(self, wiped: bool, timeout_s: float = 600) -> float:
        """Seconds from now until a probe sent now is in Redis (and, after a wipe, every agency
        hash seen before is back)."""
        started = time.monotonic()
        self.probes += 1
        event = {"schema": "emc.dossier-event.v1", "event_id": f"probe-{self.probes}", "agency_code": self.probe_agency,
                 "dossier_id": f"probe-{self.probes}", "type": "received", "channel": "online", "procedure_code": "1.1",
                 "occurred_at": f"{PROBE_PERIOD}T03:00:00Z"}
        self.load.send(self.probe_agency.encode(), orjson.dumps(event), probe=True)
        key = f"{self.settings.redis_prefix}agency:{self.probe_agency}:{PROBE_PERIOD}"
        before = self.agency_keys_before
        while time.monotonic() - started < timeout_s:
            self.supervise()
            try:
                probe_in = int(self.client.hget(key, "received") or 0) >= self.probes
                keys_back = not wiped or self._agency_keys() >= before
                if probe_in and keys_back:
                    return time.monotonic() - started
            except redis.RedisError:
                pass
            time.sleep(0.2)
        return float("inf")

    def supervise(self) -> None:
        """Restart the worker if it exited: a worker that judged itself stalled or lost its
        broker for too long exits non-zero for its supervisor, which this benchmark plays."""
        if self.worker.poll() is not None:
            self.supervisor_restarts += 1
            say(f"  {time.strftime('%H:%M:%S')} worker exited with {self.worker.returncode}: started again")
            self.worker = start_worker(self.settings, self.workdir / "worker.log")

    def s3_objects(self) -> str:
        """The record-batch objects of each topic's largest partition in the S3 bucket: what a
        Fetch of that partition lists before it reads anything (README "Reliability")."""
        largest: dict[str, int] = {}
        for (topic, _partition), n in self.s3.record_objects().items():
            largest[topic] = max(largest.get(topic, 0), n)
        return "S3 objects, largest partition per topic: " + ", ".join(
            f"{topic} {n:,}" for topic, n in sorted(largest.items(), key=lambda item: -item[1]))

    def _agency_keys(self) -> int:
        return sum(1 for _ in self.client.scan_iter(f"{self.settings.redis_prefix}agency:*", count=2000))

    def run(self) -> int:
        self.load.start()
        while events_handled(self.settings) == 0:
            time.sleep(0.2)
        say(f"phase on {self.storage} storage: {self.rate:.0f} events/s over {len(self.agencies) - 1} agencies; "
            f"{', '.join(f.__name__ for f in self.faults)} every ~{self.args.fault_every} s for {self.minutes} min")
        end = time.monotonic() + self.minutes * 60
        upcoming: list = []
        while time.monotonic() < end:
            time.sleep(self.args.fault_every * self.rng.uniform(0.5, 1.5))
            if not upcoming:  # every kind once per round, in random order: none left out by chance
                upcoming = list(self.faults)
                self.rng.shuffle(upcoming)
            fault = upcoming.pop()
            self.agency_keys_before = self._agency_keys()
            what = fault()
            recovered = self.probe_recovery(wiped=fault == self.wipe_redis, timeout_s=self.args.recovery_timeout)
            self.recoveries[fault.__name__].append(recovered)
            say(f"  {time.strftime('%H:%M:%S')} {what}: recovered in {recovered:.1f} s")
            if self.s3 is not None:
                say(f"    {self.s3_objects()}")
        self.load.finish()
        return self.check()

    def check(self) -> int:
        expected = batch_counts_of_messages(self.load.sent, self.agencies)
        prefix = self.settings.redis_prefix
        deadline = time.monotonic() + 600
        while True:
            with self.client.pipeline(transaction=False) as pipe:
                for agency, period in expected:
                    pipe.hgetall(f"{prefix}agency:{agency}:{period}")
                found = {k: nonzero(counts_from_hash(h)) for k, h in zip(expected, pipe.execute())}
            wrong = [k for k in expected if found[k] != expected[k]]
            if not wrong or time.monotonic() > deadline:
                break
            self.supervise()
            time.sleep(5)
        lost = sum(max(0, expected[k].get("received", 0) - found[k].get("received", 0)) for k in expected)
        consumer = KafkaConsumer(self.settings.dead_letter_topic, bootstrap_servers=self.settings.bootstrap_servers,
                                 auto_offset_reset="earliest", consumer_timeout_ms=15_000, max_partition_fetch_bytes=16 * 1024 * 1024)
        letters = {(dict(r.headers)["emc-source-partition"], dict(r.headers)["emc-source-offset"]) for r in consumer}
        consumer.close()
        say(f"{self.storage} phase: faults injected: {sum(len(v) for v in self.recoveries.values())}")
        for name, times in sorted(self.recoveries.items()):
            say(f"  {name:15s} x{len(times)}: recovery p50 {statistics.median(times):.1f} s, max {max(times):.1f} s")
        say(f"worker exits restarted by the benchmark (as a supervisor would): {self.supervisor_restarts}")
        say(f"events sent: {len(self.load.sent):,} valid ({self.load.failed} sends not acknowledged), {self.poison_sent:,} poison")
        say(f"counts checked: {len(expected):,} agency-periods, {len(wrong)} wrong; events lost: {lost}")
        say(f"dead letters: {len(letters):,} distinct source offsets for {self.poison_sent:,} poison sent")
        if self.s3 is not None:
            say(self.s3_objects())
        return 0 if not wrong and lost == 0 and len(letters) == self.poison_sent else 1

    def close(self) -> None:
        stop(self.worker)
        for process in (self.broker, self.redis):
            process.stop()
        if self.s3 is not None:
            self.s3.stop()


def _wipe(server: RunningProcess, data_dir: Path) -> None:
    server.kill()
    for path in data_dir.glob("appendonly*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    server.start_again()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="the phase on memory storage (0: skipped)")
    parser.add_argument("--rate", type=float, default=300.0, help="valid events per second, memory phase")
    parser.add_argument("--broker-minutes", type=float, default=5.0, help="the broker-restart phase on S3 storage (0: skipped)")
    parser.add_argument("--broker-rate", type=float, default=40.0, help="valid events per second, S3 phase")
    parser.add_argument("--broker-fetch-wait-ms", type=int, default=2000,
                        help="the worker's EMC_STATE_FETCH_MAX_WAIT_MS in the S3 phase (100 by default elsewhere)")
    parser.add_argument("--broker-linger-ms", type=int, default=5000,
                        help="the load producer's linger in the S3 phase: each produce request is one S3 object, "
                             "which every later Fetch of its partition lists")
    parser.add_argument("--fault-every", type=float, default=45.0, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--broker-down-max", type=float, default=30.0, help="longest broker outage, seconds (5 to this)")
    parser.add_argument("--recovery-timeout", type=float, default=300.0, help="seconds before a fault counts as not recovered")
    args = parser.parse_args()
    phases = [("memory", ["kill_worker", "stop_redis", "wipe_redis", "poison_burst"], args.minutes, args.rate, 20),
              ("s3", ["restart_broker"], args.broker_minutes, args.broker_rate, args.broker_linger_ms)]
    status = 0
    for storage, faults, minutes, rate, linger_ms in phases:
        if minutes <= 0:
            continue
        workdir = Path(tempfile.mkdtemp(prefix=f"emc-chaos-{storage}-"))
        chaos = Chaos(args, workdir, storage, faults, minutes, rate, linger_ms)
        try:
            outcome = chaos.run()
        finally:
            chaos.close()
        if outcome == 0:
            shutil.rmtree(workdir)
        else:  # the worker's and the servers' logs, to see why
            say(f"{storage} phase: logs kept in {workdir}")
        status |= outcome
    return status


if __name__ == "__main__":
    sys.exit(main())
