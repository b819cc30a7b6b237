"""`published_version` never recreates a hash a worker deleted (issue 15 item 4's race), on a real
redis-server: the publisher's document names an agency whose hash was deleted after it was read."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from streams.local.stack import RunningProcess
from streams.reports.bulletins import store_in_redis
from streams.sinks.keys import RedisKeys

pytestmark = pytest.mark.integration


def test_published_version_is_set_only_on_hashes_that_still_exist(redis_process: RunningProcess) -> None:
    keys = RedisKeys("emc:marks-test:")
    url = f"redis://127.0.0.1:{redis_process.port}/0"
    sync = redis.Redis.from_url(url, decode_responses=True)
    sync.hset(keys.agency("T01", "2024-12"), mapping={"resolved": 3, "full_online": 1})
    sync.hset(keys.block("national", "2024-12"), mapping={"resolved": 3})
    # T04 had a count when the document was built; a worker deleted its hash since (a void).
    doc = {"period": "2024-12", "version": 2, "published_at": "2026-12-01T00:00:00Z", "note": None, "sha256": "0" * 64,
           "agencies": {"T01": {"resolved": 3}, "T04": {"resolved": 1}}, "blocks": {"national": {"resolved": 3}}}

    async def store() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await store_in_redis(client, keys, doc, mark_hashes=True)
        finally:
            await client.aclose()

    asyncio.run(store())
    assert sync.hget(keys.agency("T01", "2024-12"), "published_version") == "2"
    assert sync.hget(keys.block("national", "2024-12"), "published_version") == "2"
    assert not sync.exists(keys.agency("T04", "2024-12"))
    assert sync.hget(keys.bulletins, "2024-12:v2") is not None
