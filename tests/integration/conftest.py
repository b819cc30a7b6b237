"""Real components for integration tests: one Tansu broker and one redis-server per session,
and `emc worker` processes started exactly as an operator would start them.

Tests share the broker and Redis but not their data: each test gets its own topics, app id
(consumer groups, changelog topics) and Redis key prefix.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.snapshot import counts_from_hash
from streams.local.demo import worker_environment
from streams.local.stack import RunningProcess, S3Store, free_port, start_redis, start_s3, start_tansu, wait_for_port
from streams.settings import Settings, load_settings
from streams.sinks.keys import KEY_SEPARATOR, RedisKeys

# Defined in tests/support; also importable from here for the tests that still import them so.
from tests.support.events import wire_event  # noqa: F401
from tests.support.oracle import nonzero
from tests.support.waiting import wait_until  # noqa: F401

pytestmark = pytest.mark.integration

_names = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    process = start_tansu(tmp_path_factory.mktemp("tansu"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """One moto_server per session, started only if a test needs a restartable broker."""
    store = start_s3(tmp_path_factory.mktemp("s3"), bucket="emc-session")
    yield store
    store.stop()


@pytest.fixture
def restartable_broker(s3_store: S3Store, tmp_path: Path) -> Iterator[RunningProcess]:
    """A Tansu broker of this test alone, its log in its own S3 bucket: `restartable_broker.kill()`
    then `.start_again()` (or `.restart()`) brings it back on the same port with every record."""
    store = s3_store.create_bucket(f"emc-{os.getpid()}-{next(_names)}")
    process = start_tansu(tmp_path / "tansu", s3=store)
    yield process
    process.stop()


@pytest.fixture
def broker_under_test(broker: RunningProcess) -> RunningProcess:
    """The broker `settings` points at: the shared one. A module that kills its broker overrides
    this fixture with `restartable_broker`."""
    return broker


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    process = start_redis(tmp_path_factory.mktemp("redis"))
    yield process
    process.stop()


@pytest.fixture
def settings(broker_under_test: RunningProcess, redis_process: RunningProcess, tmp_path: Path) -> Settings:
    n = next(_names)
    run = f"t{os.getpid()}x{n}"
    return load_settings(
        {
            "broker": f"kafka://127.0.0.1:{broker_under_test.port}",
            "redis_url": f"redis://127.0.0.1:{redis_process.port}/0",
            "metrics_port": free_port(),
            "data_dir": str(tmp_path / "worker-0"),
            "input_topic": f"emc.dossier-events.{run}",
            "dead_letter_topic": f"emc.dossier-events.dlq.{run}",
            "batch_topic": f"emc.dossier-batches.{run}",
            "control_topic": f"emc.agency-control.{run}",
            "bulletin_topic": f"emc.bulletins.{run}",
            "catalogue_topic": f"emc.procedure-catalogue.{run}",
            "app_id": f"emc-{run}",
            "redis_prefix": f"emc:{run}:",
            "partitions": 4,
            "snapshot_interval_s": 0.5,
            "log_level": "info",
        },
        environ={},
    )


@pytest.fixture
def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)


class WorkerProcess:
    """An `emc worker` child process with its own data dir and metrics port."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=worker_environment(self.settings),
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
        )
        wait_for_port(self.settings.metrics_port, 60, self.process, "emc worker")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def discard(self) -> None:
        """SIGKILL if still running: the end of a test that checks nothing about the stop. A clean
        stop (Faust's shutdown, the last commit) takes 2 to 8 s on a loaded machine, once per worker
        of every test; the tests of the clean stop itself (test_reliability, test_redis_outage) time
        theirs with SIGTERM."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode("utf-8")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(index: int = 0) -> WorkerProcess:
        worker_settings = settings if index == 0 else replace(
            settings, data_dir=tmp_path / f"worker-{index}", metrics_port=free_port(), worker_name=f"w{index}"
        )
        worker = WorkerProcess(worker_settings, tmp_path / f"worker-{index}.log")
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.discard()


def events_handled(worker: WorkerProcess) -> float:
    """The worker's emc_events_total, all labels summed."""
    text = worker.metrics_text()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "emc_events_total")


def redis_counts(redis_client: redis.Redis, prefix: str) -> dict[tuple[str, str], dict[str, int]]:
    """Every agency hash under `prefix`: (agency, period) -> nonzero counts, as tests.oracle has them."""
    keys = RedisKeys(prefix)
    found = {}
    for key in redis_client.scan_iter(keys.agency("*", "*"), count=1000):
        _, agency, period = key.removeprefix(prefix).split(KEY_SEPARATOR)
        counts = nonzero(counts_from_hash(redis_client.hgetall(key)))
        if counts:
            found[(agency, period)] = counts
    return found
