"""A lost Redis is retried with backoff and logged once; when it is back, snapshots catch up."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import redis

from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.demo import worker_environment
from streams.local.stack import start_redis
from streams.simulation.simulator import SimulationConfig, simulate
from streams.sinks.keys import RedisKeys
from tests.integration.conftest import WorkerProcess, redis_counts
from tests.integration.test_reliability import stop_timed
from tests.support.oracle import batch_counts_of_messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
AGENCY = next(a.code for a in REGISTRY if a.block == "province" and a.valid_to is None)


def _received(n: int) -> tuple[bytes, bytes]:
    event = {"schema": "emc.dossier-event.v1", "event_id": f"e{n}", "agency_code": AGENCY, "dossier_id": f"d{n}",
             "type": "received", "channel": "online", "procedure_code": "1.1", "occurred_at": "2025-08-01T03:00:00Z"}
    return AGENCY.encode(), orjson.dumps(event)


OUTAGE_S = 15


def test_snapshots_catch_up_after_redis_comes_back_and_sigterm_without_redis_exits_zero(settings, tmp_path: Path) -> None:
    """Redis stopped for 15 s: its outage is logged once, the snapshots catch up when it is
    back. Then Redis gone again: SIGTERM still ends the worker with 0 within 10 s (the same
    bound as with the broker gone, test_reliability.py)."""
    own_redis = start_redis(tmp_path / "redis")
    settings = replace(settings, redis_url=f"redis://127.0.0.1:{own_redis.port}/0")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = RedisKeys(settings.redis_prefix).agency(AGENCY, "2025-08")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with EventProducer(settings) as producer:
            producer.send_messages(_received(n) for n in range(10))
            wait_until(lambda: client.hget(key, "received") == "10", 120, f"first snapshot; log:\n{worker.log_tail()}")

            before_outage = len(worker.log_path.read_text().splitlines())
            own_redis.stop()
            producer.send_messages(_received(n) for n in range(10, 25))
            wait_until(lambda: "redis_outage_started" in worker.log_path.read_text(), 60, "the outage logged")
            time.sleep(OUTAGE_S)  # 60 snapshot ticks and ranking rebuilds fail meanwhile

            own_redis = start_redis(tmp_path / "redis", port=own_redis.port)  # same dir: AOF keeps old keys
            wait_until(lambda: client.hget(key, "received") == "25", 90, f"catch-up; log:\n{worker.log_tail()}")
            wait_until(lambda: "redis_outage_ended" in worker.log_path.read_text(), 30, "the outage's end logged")
        since = [orjson.loads(line) for line in worker.log_path.read_text().splitlines()[before_outage:]]
        # Every writer's failures (snapshots, rankings, bulletin gauges) in two lines: before,
        # ~12 lines in 15 s, with tracebacks.
        about_redis = [line for line in since if line["level"] != "info" and "redis" in orjson.dumps(line).decode().lower()]
        assert [line.get("event") for line in about_redis] == ["redis_outage_started", "redis_outage_ended"], about_redis
        ended = about_redis[1]
        assert ended["outage_s"] >= OUTAGE_S and ended["failed_attempts"] > 10  # rankings every 0.25 s, snapshots backing off
        assert worker.process is not None and worker.process.poll() is None  # never crashed

        own_redis.stop()
        wait_until(lambda: worker.log_path.read_text().count("redis_outage_started") == 2, 60, "the second outage logged")
        code, seconds = stop_timed(worker)
        print(f"SIGTERM with Redis gone: exit {code} after {seconds:.2f} s")
        assert code == 0 and seconds < 10
    finally:
        worker.stop()
        own_redis.stop()


WRITE_TIMES = {"updated_at", "last_changed_at", "generated_at"}  # when a key was written, not what it says
SNAPSHOT_KEYS = ("agency:", "block:", "rank:", "agencies", "targets:", "target-periods", "maintenance-windows")


def _contract_keys(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key under `prefix` with its value, without the write times (WRITE_TIMES) and the
    instance marker, which differ by design after a rewrite."""
    keys = [k for k in client.scan_iter(f"{prefix}*", count=5000)
            if k != RedisKeys(prefix).instance and not k.startswith(f"{prefix}rankings:")]  # the leader's work queues
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        kinds = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for key, kind in zip(keys, kinds):
            {"hash": pipe.hgetall, "zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
             "set": pipe.smembers}.get(kind, pipe.get)(key)
        values = pipe.execute()
    found: dict[str, object] = {}
    for key, kind, value in zip(keys, kinds, values):
        if kind == "hash":
            value = {f: _without_times(v) for f, v in value.items() if f not in WRITE_TIMES}
        elif kind == "set":
            value = sorted(value)
        elif kind == "string":
            value = _without_times(value)
        found[key] = value
    return found


def _differences(found: dict[str, object], wanted: dict[str, object]) -> list[str]:
    return sorted(k for k in found.keys() | wanted.keys() if found.get(k) != wanted.get(k))


def _without_times(text: str) -> object:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(value, dict):
        for name in WRITE_TIMES:
            value.pop(name, None)
    return value


def test_redis_restarted_empty_gets_every_key_back(settings, tmp_path: Path) -> None:
    """A failover to an empty replica: every agency hash of every period ever seen, the blocks,
    national, rankings, lists, targets, maintenance windows and the agencies hash come back
    exact from the worker's tables, with no new event."""
    own_redis = start_redis(tmp_path / "redis")
    settings = replace(settings, redis_url=f"redis://127.0.0.1:{own_redis.port}/0")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    agencies = [a.code for a in REGISTRY.valid_on(date(2025, 1, 1))][:10]
    config = SimulationConfig(agencies=agencies, dossiers=800, seed=3, start=datetime(2024, 10, 1, tzinfo=timezone.utc),
                              end=datetime(2025, 3, 1, tzinfo=timezone.utc), duplicate_share=0.05, correction_share=0.05)
    messages = list(simulate(config))
    expected = batch_counts_of_messages(messages, (a.code for a in REGISTRY))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with EventProducer(settings) as producer:
            producer.send_messages((m.key, m.value) for m in messages)
        in_an_hour = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
        for argv in (("targets", "set", agencies[0], "2025-01", "0.9"),
                     ("agency", "maintenance", agencies[1], "--until", in_an_hour, "--reason", "nâng cấp")):
            result = subprocess.run([sys.executable, "-m", "streams.cli", *argv], env=worker_environment(settings),
                                    capture_output=True, text=True, timeout=90)
            assert result.returncode == 0, result.stderr
        wait_until(lambda: redis_counts(client, settings.redis_prefix) == expected, 300, f"first snapshots; log:\n{worker.log_tail()}", 1.0)

        def settled() -> dict[str, object]:
            # Rankings and lists are rebuilt by the leader a moment after the counts.
            first = _contract_keys(client, settings.redis_prefix)
            time.sleep(2 * settings.snapshot_interval_s + 1)
            changing = _differences(_contract_keys(client, settings.redis_prefix), first)
            if changing:
                raise AssertionError(f"{len(changing)} keys still changing, e.g. {changing[:5]}")
            return first

        before = wait_until(settled, 60, "Redis to settle")
        assert any(":targets:" in k for k in before) and any("maintenance" in k for k in before)
        assert any(":rank" in k for k in before) and any(":list:" in k for k in before)
        periods = {period for (_, period) in expected}
        assert len(periods) > 20  # months, quarters, years and days: far more than the current ones

        own_redis.kill()
        for path in (tmp_path / "redis").glob("appendonly*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        own_redis.start_again()
        assert client.dbsize() == 0
        wiped = time.monotonic()

        def back(kinds: tuple[str, ...]) -> Callable[[], bool]:
            def check() -> bool:
                missing = [k for k in _differences(_contract_keys(client, settings.redis_prefix), before)
                           if k[len(settings.redis_prefix):].startswith(kinds)]
                if missing:
                    raise AssertionError(f"{len(missing)} keys differ, e.g. {missing[:5]}")
                return True
            return check

        # What the snapshots write (counts, blocks, national, rank sets, agencies, targets,
        # maintenance windows) within 60 s; the leader's rankings and lists, rebuilt from those
        # a period at a time (~170 periods here), may take a little longer on a busy machine.
        wait_until(back(SNAPSHOT_KEYS), 60, f"every snapshot key back as it was; log:\n{worker.log_tail()}", 1.0)
        snapshots_back = time.monotonic() - wiped
        wait_until(back(("",)), 120, f"every key back as it was; log:\n{worker.log_tail()}", 1.0)
        print(f"Redis restarted empty: snapshot keys back in {snapshots_back:.1f} s, every key (rankings, lists) "
              f"in {time.monotonic() - wiped:.1f} s")
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.discard()
        own_redis.stop()

