"""Running `emc` the way an operator does: a child process with the settings in its environment."""

from __future__ import annotations

import subprocess
import sys

from streams.local.demo import worker_environment
from streams.settings import Settings


def emc(settings: Settings, *argv: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """`emc ARGV` with every setting as its EMC_* variable; with `check`, it must exit 0."""
    done = subprocess.run([sys.executable, "-m", "streams.cli", *argv], env=worker_environment(settings),
                          capture_output=True, text=True, timeout=timeout_s)
    if check:
        assert done.returncode == 0, f"emc {' '.join(argv)}: {done.stderr}"
    return done
