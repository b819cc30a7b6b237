"""`emc local`: the whole thing on one machine.

Starts a Tansu broker and a redis-server on free loopback ports, one worker (a child
process, exactly as `emc worker`), publishes simulated traffic for the current month, and
prints a live summary read back from Redis until Ctrl-C (or --duration).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import redis

from streams.domain.periods import current_periods
from streams.domain.registry import Registry
from streams.errors import ExternalServiceError
from streams.local_stack import free_port, start_redis, start_tansu, wait_for_port
from streams.producer import EventProducer
from streams.settings import ENV_VARS, Settings, load_settings
from streams.simulator import SimulationConfig, simulate


def worker_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, var in ENV_VARS.items():
        env[var] = str(getattr(settings, name))
    return env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=worker_environment(settings), stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )


def run_local(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    # The broker keeps its data in memory: state left by an earlier run would not match it.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"emc local: starting in {workdir}", flush=True)
    broker = start_tansu(workdir)
    redis_server = start_redis(workdir / "redis")
    settings = load_settings({
        "broker": f"kafka://127.0.0.1:{broker.port}",
        "redis_url": f"redis://127.0.0.1:{redis_server.port}/0",
        "metrics_port": args.metrics_port or free_port(),
        "data_dir": str(workdir / "worker-data"),
        "partitions": 4,
    }, environ={})
    worker = start_worker(settings, workdir / "worker.log")
    try:
        wait_for_port(settings.metrics_port, 60, worker, "emc worker")
        print(f"  broker   {settings.broker}   (topic {settings.input_topic})")
        print(f"  redis    {settings.redis_url}   (keys {settings.redis_prefix}*)")
        print(f"  metrics  http://127.0.0.1:{settings.metrics_port}/metrics")
        print(f"  logs     {workdir}/worker.log", flush=True)
        _publish_traffic(settings, args.dossiers, args.seed)
        _watch(settings, worker, args.duration)
    except KeyboardInterrupt:
        print("\nemc local: stopping")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis_server.stop()
        broker.stop()
    return 0


def _publish_traffic(settings: Settings, dossiers: int, seed: int) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    month_start = datetime.fromisoformat(current_periods(now)["month"] + "-01T00:00:00+07:00")
    codes = [a.code for a in Registry.load().valid_on(now.date())]
    config = SimulationConfig(agencies=codes, dossiers=dossiers, seed=seed, start=month_start, end=now)
    started = time.monotonic()
    with EventProducer(settings) as producer:
        count = producer.send_messages(
            simulate(config),
            progress=lambda n: print(f"\r  traffic  {n:,} messages published", end="", flush=True),
        )
    print(f"\r  traffic  {count:,} messages published in {time.monotonic() - started:.1f} s", flush=True)


def _watch(settings: Settings, worker: subprocess.Popen, duration: float) -> None:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    prefix = settings.redis_prefix
    registry = Registry.load()
    deadline = time.monotonic() + duration if duration > 0 else None
    while deadline is None or time.monotonic() < deadline:
        if worker.poll() is not None:
            raise ExternalServiceError(f"the worker exited with code {worker.returncode}; see its log")
        month = current_periods()["month"]
        national = client.hgetall(f"{prefix}block:national:{month}")
        top = client.zrevrange(f"{prefix}rank:province:{month}", 0, 4, withscores=True)
        ministries = client.zrevrange(f"{prefix}rank:ministry:{month}", 0, 2, withscores=True)
        rate = national.get("full_online_rate")
        line = f"  {month}: resolved {national.get('resolved', '0')}, full online {float(rate) * 100:.2f} %" if rate else f"  {month}: waiting for data"
        print(line, flush=True)
        for title, ranking in (("top provinces", top), ("top ministries", ministries)):
            if ranking:
                names = ", ".join(f"{_short(registry, code)} {score * 100:.1f} %" for code, score in ranking)
                print(f"    {title}: {names}", flush=True)
        time.sleep(5)


def _short(registry: Registry, code: str) -> str:
    agency = registry.get(code)
    return agency.short_name if agency else code
