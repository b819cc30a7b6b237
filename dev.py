#!/usr/bin/env python3
"""The README's two commands, needing nothing but Python 3.11+:

    python3 dev.py local    # make .venv, install EMC Streams with the local stack, run `emc local`
    python3 dev.py test     # install what the tests need, run the whole test suite

Everything is installed into ./.venv. `test` also installs the Debian packages the tests
use (prometheus, promtool, alertmanager, redis-server) when it runs as root and they are
missing; as another user it says which are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
COMPOSE_VENV = ROOT / ".venv-compose"
DEBIAN_PACKAGES = {"prometheus": "prometheus", "promtool": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager",
                   "redis-server": "redis-server", "chromium": "chromium"}


def _run(*command: str, **kwargs: object) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def _python(env: Path) -> str:
    return str(env / "bin" / "python")


def ensure_venv(extra: str) -> str:
    if not (VENV / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    python = _python(VENV)
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extra}]")
    return python


def ensure_debian_packages() -> None:
    missing = sorted({package for binary, package in DEBIAN_PACKAGES.items() if shutil.which(binary) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"note: missing Debian packages {', '.join(missing)}; tests that need them will fail", file=sys.stderr)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run("apt-get", "update", "-q", env=env)
    _run("apt-get", "install", "-y", "-q", *missing, env=env)


def ensure_compose() -> None:
    """docker-compose 1.x pins PyYAML<6, so it lives in a venv of its own."""
    if (COMPOSE_VENV / "bin" / "docker-compose").exists():
        return
    venv.EnvBuilder(with_pip=True).create(COMPOSE_VENV)
    python = _python(COMPOSE_VENV)
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    # PyYAML 5.4 has no wheel for Python 3.11 and its sdist needs Cython < 3 to build.
    _run(python, "-m", "pip", "install", "--quiet", "cython<3", "wheel", "setuptools")
    _run(python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "pyyaml==5.4.1")
    _run(python, "-m", "pip", "install", "--quiet", "docker-compose")


def local(args: list[str]) -> int:
    python = ensure_venv("local")
    child = subprocess.Popen([python, "-m", "streams.cli", "local", *args])
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached `emc local` too (same process group): let it stop its broker, Redis
        # and worker and report, instead of printing this script's traceback over its output.
        return child.wait()


# Two test processes: most of the integration tests' time is waiting (consumer groups joining,
# outages and windows that last their length), which the other process fills. tests/conftest.py
# keeps each module on one process and the event-streaming modules in one queue. `-n 0` (or any
# -n given) overrides this.
PARALLEL_PYTEST = ["-n", "2", "--dist", "loadfile"]


def test(args: list[str]) -> int:
    if not any(arg.startswith(("-n", "--numprocesses")) for arg in args):
        args = [*PARALLEL_PYTEST, *args]
    python = ensure_venv("dev")
    ensure_debian_packages()
    try:
        ensure_compose()
    except subprocess.CalledProcessError as exc:
        print(f"note: could not install docker-compose ({exc}); the compose test will fail", file=sys.stderr)
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{COMPOSE_VENV / 'bin'}:{os.environ.get('PATH', '')}")
    code = subprocess.call([python, "-m", "pytest", *args], cwd=ROOT, env=env)
    if code == 5:
        print("error: pytest collected no tests: the test layout is broken", file=sys.stderr)
        return 1
    return code


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("local", "test"):
        print("usage: python3 dev.py local|test [arguments for emc local / pytest]", file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    return local(rest) if command == "local" else test(rest)


if __name__ == "__main__":
    sys.exit(main())
