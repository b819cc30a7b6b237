"""A lost Redis is retried with backoff and logged; when it is back, snapshots catch up."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis

from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.stack import start_redis
from streams.sinks.keys import RedisKeys
from tests.integration.conftest import WorkerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

AGENCY = next(a.code for a in Registry.load() if a.block == "province" and a.valid_to is None)


def _received(n: int) -> tuple[bytes, bytes]:
    event = {"schema": "emc.dossier-event.v1", "event_id": f"e{n}", "agency_code": AGENCY, "dossier_id": f"d{n}",
             "type": "received", "channel": "online", "procedure_code": "1.1", "occurred_at": "2025-08-01T03:00:00Z"}
    return AGENCY.encode(), orjson.dumps(event)


def test_snapshots_catch_up_after_redis_comes_back(settings, tmp_path: Path) -> None:
    own_redis = start_redis(tmp_path / "redis")
    settings = replace(settings, redis_url=f"redis://127.0.0.1:{own_redis.port}/0")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = RedisKeys(settings.redis_prefix).agency(AGENCY, "2025-08")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with EventProducer(settings) as producer:
            producer.send_messages(_received(n) for n in range(10))
            wait_until(lambda: client.hget(key, "received") == "10", 120, f"first snapshot; log:\n{worker.log_tail()}")

            own_redis.stop()
            producer.send_messages(_received(n) for n in range(10, 25))
            wait_until(lambda: "redis unreachable" in worker.log_path.read_text(), 60, "a logged retry")

            own_redis = start_redis(tmp_path / "redis", port=own_redis.port)  # same dir: AOF keeps old keys
            wait_until(lambda: client.hget(key, "received") == "25", 90, f"catch-up; log:\n{worker.log_tail()}")
        retries = [orjson.loads(line) for line in worker.log_path.read_text().splitlines() if "redis unreachable" in line]
        assert retries[0]["event"] == "redis_retry" and retries[0]["attempt"] == 1
        assert worker.process is not None and worker.process.poll() is None  # never crashed
    finally:
        worker.stop()
        own_redis.stop()
