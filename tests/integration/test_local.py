"""The README's first command: `emc local` starts everything and shows figures from Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_emc_local_runs_the_whole_thing_and_prints_live_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "local", "--dossiers", "800", "--duration", "45", "--workdir", str(tmp_path / "local")],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert re.search(r"broker\s+kafka://127\.0\.0\.1:\d+", out)
    assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+/metrics", out)
    assert "messages published" in out
    assert re.search(r"resolved \d+, full online \d+\.\d\d %", out), out[-2000:]
    assert "top provinces:" in out
