"""The snapshot script and the rankings' read of it, on a real redis-server (no broker): what
the leader reads for a ranking equals the agency hashes the snapshot script wrote, and the
script's packed counts argument writes every field exactly."""

from __future__ import annotations

import asyncio
import random

import redis

from streams.domain.registry import Registry
from streams.domain.snapshot import SNAPSHOT_COUNT_FIELDS
from streams.local.stack import RunningProcess
from streams.settings import load_settings
from streams.sinks.keys import RedisKeys
from streams.sinks.redis_rankings import RANKED_FIELDS, read_period_counts, read_ranked_counts
from streams.sinks.redis_snapshots import WRITTEN_FIELDS, SnapshotPublisher, connect

REGISTRY = Registry.load()
PERIODS = ("2025-04", "2025-04-30", "2025")


def test_ranked_counts_are_the_written_hashes_fields(redis_process: RunningProcess) -> None:
    settings = load_settings({"redis_url": f"redis://127.0.0.1:{redis_process.port}/0", "redis_prefix": "emc:ranked:"},
                             environ={})
    rng = random.Random(7)
    codes = [agency.code for agency in REGISTRY]
    written: dict[tuple[str, str], dict[str, int]] = {}
    for period in PERIODS:
        for code in rng.sample(codes, 25):
            # Some rows all zero (no hash), some without resolved dossiers, some large counts.
            written[(code, period)] = {name: rng.choice((0, 0, 1, 7, 10**12)) for name in WRITTEN_FIELDS}
        for code in rng.sample(codes, 5):
            written[(code, period)] = dict.fromkeys(WRITTEN_FIELDS, 0)

    async def run() -> tuple[dict, dict]:
        client = connect(settings)
        publisher = SnapshotPublisher(settings, REGISTRY, client)
        publisher.mark_dirty(written)
        assert await publisher.flush(lambda agency, period: written[(agency, period)], {}, None)
        keys = RedisKeys(settings.redis_prefix)
        ranked = {p: await read_ranked_counts(client, keys, REGISTRY, p) for p in PERIODS}
        whole = {p: await read_period_counts(client, keys, REGISTRY, p) for p in PERIODS}
        await client.aclose()
        return ranked, whole

    ranked, whole = asyncio.run(run())
    raw = redis.Redis(port=redis_process.port, decode_responses=True)
    for period in PERIODS:
        expected = {code: counts for (code, p), counts in written.items() if p == period and any(counts[name] for name in SNAPSHOT_COUNT_FIELDS)}
        assert set(whole[period]) == set(expected)  # a row without counts has no hash
        for code, counts in expected.items():  # every field as written through the packed argument
            stored = raw.hgetall(RedisKeys(settings.redis_prefix).agency(code, period))
            assert {name: int(stored[name]) for name in WRITTEN_FIELDS} == counts, (code, period)
        assert ranked[period] == {code: {name: counts[name] for name in RANKED_FIELDS} for code, counts in expected.items()}
    raw.delete(*raw.keys("emc:ranked:*"))
