"""The agencies' guide, followed on the real stack: the complete dossier of docs/connecting.md
is published with `emc publish` to a real broker and worker, and `emc explain` and the Redis
hash give the counts the guide says; `emc report` prints the month. One worker, one minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.domain.dossier import COUNT_FIELDS
from streams.domain.snapshot import counts_from_hash
from streams.settings import Settings
from streams.sinks.keys import RedisKeys
from tests.support.waiting import wait_until
from tests.unit.docs.markdown import REPO_ROOT, fenced_blocks

pytestmark = pytest.mark.integration

GUIDE = REPO_ROOT / "docs" / "connecting.md"


def _guide_example() -> tuple[str, dict[str, dict[str, int]]]:
    blocks = fenced_blocks(GUIDE)
    index = next(i for i, b in enumerate(blocks) if b.language == "json" and b.role == "events")
    assert blocks[index + 1].role == "counts", "the guide's events are followed by their counts"
    return blocks[index].text + "\n", json.loads(blocks[index + 1].text)


def _emc(*argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "streams.cli", *argv], capture_output=True, text=True,
                            timeout=timeout_s, env={k: v for k, v in os.environ.items() if not k.startswith("EMC_")})
    assert result.returncode == 0, f"emc {' '.join(argv)} exited {result.returncode}: {result.stderr[-2000:]}"
    return result


def _full(counts: dict[str, int]) -> dict[str, int]:
    return {field: counts.get(field, 0) for field in COUNT_FIELDS}


def test_the_guides_dossier_counts_as_the_guide_says(settings: Settings, start_worker, redis_client, tmp_path: Path) -> None:
    events, expected = _guide_example()
    (period, counts), = expected.items()
    agency = json.loads(events.splitlines()[0])["agency_code"]
    events_file = tmp_path / "my-events.jsonl"
    events_file.write_text(events, encoding="utf-8")
    start_worker()

    _emc("publish", str(events_file), "--broker", settings.broker, "--input-topic", settings.input_topic)
    key = RedisKeys(settings.redis_prefix).agency(agency, period)
    wait_until(lambda: _full(counts_from_hash(redis_client.hgetall(key))) == _full(counts), 120,
               f"{key} to hold the guide's counts {counts}")

    explained = json.loads(_emc(
        "explain", agency, period, "--format", "json", "--broker", settings.broker, "--app-id", settings.app_id,
        "--redis-url", settings.redis_url, "--redis-prefix", settings.redis_prefix,
    ).stdout)
    assert _full(explained["counts"]) == _full(counts), explained["counts"]
    assert explained["matches_redis"] is True

    report = _emc("report", "--period", period, "--block", "province", "--format", "json",
                  "--redis-url", settings.redis_url, "--redis-prefix", settings.redis_prefix).stdout
    assert agency in report
