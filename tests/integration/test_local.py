"""The README's first command: `emc local` starts everything, replays a month of calibrated
national traffic compressed in time, and shows live figures from Redis."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.local.stack import free_port
from streams.simulation.profile import ProfileConfig, ProfileSimulation

pytestmark = pytest.mark.integration

FLAGS = ["--profile", "2024", "--month", "2024-12", "--scale", "0.0001", "--min-resolved-published", "40",
         "--min-resolved", "10", "--lean", "--seconds", "15", "--seed", "3"]


def test_emc_local_replays_a_month_and_prints_live_figures_until_redis_holds_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "local", *FLAGS, "--duration", "170", "--exit-when-done",
         "--workdir", str(tmp_path / "local")],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert re.search(r"broker\s+kafka://127\.0\.0\.1:\d+", out)
    assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+/metrics", out)
    # Live: figures were printed while the traffic was still being published.
    published_at = out.index("messages published in")
    assert re.search(r"\[2024-12-\d\d \d\d:\d\d \+07:00\] [\d,]+ messages published", out[:published_at]), out[-3000:]
    assert "top provinces:" in out and "top ministries:" in out
    # The worker caught up: the last figures are the month the simulator planned, exactly.
    assert "done     Redis holds all" in out, out[-3000:]
    plan = ProfileSimulation(ProfileConfig(profile="2024", period="2024-12", scale=0.0001, seed=3,
                                           min_resolved_published=40, min_resolved=10, lean=True)).plan
    last = re.findall(r"2024-12: resolved (\d+), full online (\d+\.\d\d) % \(ministries (\d+\.\d\d) %, provinces (\d+\.\d\d) %\)", out)[-1]
    assert int(last[0]) == plan.totals()[1]
    assert float(last[1]) == pytest.approx(100 * plan.rate(), abs=0.006)
    assert float(last[2]) == pytest.approx(100 * plan.rate("ministry"), abs=0.006)
    assert float(last[3]) == pytest.approx(100 * plan.rate("province"), abs=0.006)
    # ... which are the published 2024 ones, within half a point.
    assert abs(float(last[1]) - 45.8) < 0.5 and abs(float(last[2]) - 63.47) < 0.5 and abs(float(last[3]) - 18.54) < 0.5


def test_emc_local_month_now_fills_the_current_windows_of_the_metrics(tmp_path: Path) -> None:
    """`--month now`: the current month up to now, so /metrics (what Prometheus and the
    dashboards read) holds it in its current windows, and every agency has just sent a heartbeat."""
    port = free_port()
    flags = [flag if flag != "2024-12" else "now" for flag in FLAGS]
    flags[flags.index("--profile") + 1] = "2025"
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "local", *flags, "--duration", "170", "--metrics-port", str(port),
         "--workdir", str(tmp_path / "local")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        assert process.stdout is not None
        while not (lines and lines[-1].lstrip().startswith("done")):
            line = process.stdout.readline()
            assert line, "emc local ended before Redis held the month:\n" + "".join(lines[-40:])
            lines.append(line)
        out = "".join(lines)
        month = datetime.now(timezone(timedelta(hours=7))).strftime("%Y-%m")
        planned = int(re.search(rf"traffic  profile 2025, {month}: ([\d,]+) resolved dossiers", out).group(1).replace(",", ""))
        last = re.findall(rf"{month}: resolved (\d+), full online (\d+\.\d\d) %", out)[-1]

        def scrape() -> list:
            metrics = text_string_to_metric_families(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
            return [s for family in metrics for s in family.samples]

        def month_resolved(samples: list) -> float:
            return sum(s.value for s in samples if s.name == "emc_dossiers" and s.labels["window"] == "month" and s.labels["mode"] == "all")

        # The metrics view is rebuilt on the worker's next tick after Redis has the month (the
        # contract allows 5 s for a snapshot to reflect an applied event).
        samples = scrape()
        deadline = time.monotonic() + 5
        while month_resolved(samples) != planned and time.monotonic() < deadline:
            time.sleep(0.5)
            samples = scrape()
        resolved = month_resolved(samples)
        national = [s.value for s in samples if s.name == "emc_block_full_online_ratio"
                    and s.labels == {"block": "national", "window": "month"}]
        assert resolved == planned == int(last[0])
        assert national and 100 * national[0] == pytest.approx(float(last[1]), abs=0.006)
        statuses = {s.labels["agency"]: s.labels["status"] for s in samples if s.name == "emc_agency_status" and s.value == 1}
        assert statuses and "silent" not in statuses.values(), statuses
    finally:
        process.terminate()
        process.wait(timeout=60)
    # Stopped by SIGTERM (as a supervisor stops it), it stopped its worker too.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
