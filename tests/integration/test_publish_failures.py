"""`emc publish` checks every send's result: a record the broker does not take makes it exit
non-zero, naming how many records failed (issue 18 item 7)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from streams.local.demo import worker_environment
from tests.integration.conftest import wire_event

pytestmark = pytest.mark.integration


def test_publish_exits_non_zero_naming_how_many_records_failed(settings, tmp_path) -> None:
    good = [orjson.dumps(wire_event("BTC", f"e{n}", f"d{n}", "received", "2025-08-01T03:00:00Z",
                                    channel="online", procedure_code="1.1")) for n in range(8)]
    # Over the producer's 1 MiB request limit: refused, as a broker limit would refuse it.
    huge = orjson.dumps(wire_event("BTC", "big", "d-big", "received", "2025-08-01T03:00:00Z",
                                   channel="online", procedure_code="1.1", note="x" * (2 * 1024 * 1024)))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([*good[:4], huge, *good[4:], huge]) + b"\n")
    result = subprocess.run([sys.executable, "-m", "streams.cli", "publish", str(path)], env=worker_environment(settings),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result
    assert "2 of 10 records failed" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("emc: error: ")

    path.write_bytes(b"\n".join(good) + b"\n")
    result = subprocess.run([sys.executable, "-m", "streams.cli", "publish", str(path)], env=worker_environment(settings),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "published 8 events" in result.stdout
