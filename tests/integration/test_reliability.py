"""Issue 18 items 1, 5, 6, 9, 10 against a real broker and Redis: /healthz and /readyz, the lag
of every consumed topic, a stalled state stage made fatal, a bounded SIGTERM, the broker
outage logged once, and the time a rebalance takes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.stack import start_tansu
from streams.sinks.keys import RedisKeys
from streams.worker.health import EXIT_TASK_ENDED, Progress, ProgressWatch
from streams.worker.ingest import state_partition_for
from streams.worker.progress import HighwaterProbe
from tests.integration.conftest import WorkerProcess
from tests.support.events import wire_event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
PROVINCES = [a.code for a in REGISTRY if a.block == "province" and a.valid_to is None]


def _received(agency: str, n: int, run: str = "") -> tuple[bytes, bytes]:
    event = wire_event(agency, f"e{run}{n}", f"d{run}{n}", "received", "2025-08-01T03:00:00Z", channel="online",
                       procedure_code="1.1")
    return agency.encode(), orjson.dumps(event)


def _one_agency_per_partition(partitions: int) -> list[str]:
    found: dict[int, str] = {}
    for code in PROVINCES:
        found.setdefault(state_partition_for(code, partitions), code)
    assert len(found) == partitions
    return [found[p] for p in range(partitions)]


def _get(worker: WorkerProcess, path: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{worker.settings.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _lag_series(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(worker.metrics_text())
    return {(s.labels.get("topic", "state stage"), s.labels["partition"]): s.value
            for f in families for s in f.samples if s.name in ("emc_consumer_lag_messages", "emc_state_lag_messages")}


def _log_lines(worker: WorkerProcess) -> list[dict]:
    lines = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def stop_timed(worker: WorkerProcess) -> tuple[int, float]:
    assert worker.process is not None
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(timeout=30)
    return code, time.monotonic() - started


def test_probes_and_lag_of_every_consumed_topic_then_a_clean_stop(settings, start_worker, redis_client) -> None:
    worker = start_worker()
    assert _get(worker, "/healthz")[0] == 200  # live at once: the loop answers, no task ended
    wait_until(lambda: _get(worker, "/readyz")[0] == 200, 120, f"readiness; log:\n{worker.log_tail()}")
    agencies = _one_agency_per_partition(settings.partitions)
    with EventProducer(settings) as producer:
        producer.send_messages(_received(agency, n) for n in range(20) for agency in agencies)

    def all_applied() -> bool:
        return all(redis_client.hget(RedisKeys(settings.redis_prefix).agency(a, "2025-08"), "received") == "20" for a in agencies)

    wait_until(all_applied, 120, f"events applied; log:\n{worker.log_tail()}")
    # Lag of the input topic (ingest) and of the batch topic (state), every partition, back to 0.
    wanted = {(topic, str(p)) for topic in (settings.input_topic, settings.batch_topic, "state stage")
              for p in range(settings.partitions)}
    wait_until(lambda: wanted <= set(_lag_series(worker)) and not any(_lag_series(worker).values()), 30,
               f"lag of both stages at 0, got {_lag_series(worker)}")
    status, body = _get(worker, "/healthz")
    assert (status, body) == (200, {"ok": True, "problems": []})

    code, seconds = stop_timed(worker)
    print(f"SIGTERM with everything up: exit {code} after {seconds:.2f} s")
    assert code == 0 and seconds < 10


def test_a_task_that_fails_ends_the_worker_with_one_log_line(settings, tmp_path: Path) -> None:
    """A batch message the state stage cannot read (here: written by hand to the batch topic)
    makes the Faust agent raise: the worker exits with code 70 at once, naming the task."""
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: _get(worker, "/readyz")[0] == 200, 120, f"readiness; log:\n{worker.log_tail()}")
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        producer.send(settings.batch_topic, value=b"not a batch", partition=0).get(timeout=30)
        producer.close()
        assert worker.process is not None
        code = worker.process.wait(timeout=60)
        assert code == EXIT_TASK_ENDED
        ended = [line for line in _log_lines(worker) if line.get("event") == "task_ended"]
        assert len(ended) == 1 and ended[0]["task"] == "state agent" and ended[0]["error"], ended
    finally:
        worker.stop()


async def _probe_round(settings, topic: str, partitions: int) -> dict:
    probe = HighwaterProbe(settings.bootstrap_servers, "test-probe")
    try:
        found: dict = {}
        for _ in range(50):  # the first fetches answer within a few rounds
            found = await probe.highwaters((topic, p) for p in range(partitions))
            if len(found) == partitions:
                break
            await asyncio.sleep(0.2)
        return found
    finally:
        await probe.stop()


def test_the_stall_detector_sees_lag_that_does_not_move_on_a_real_topic(settings) -> None:
    """The state stage's lag is measured with a probe of its own (a stalled consumer no longer
    learns high watermarks): messages nobody consumes are lag, and lag that does not move is a
    stall once `stall_after_s` has passed."""
    topic = settings.batch_topic
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for n in range(7):
        producer.send(topic, value=b"x", partition=n % 2)
    producer.flush()
    producer.close()
    highwaters = asyncio.run(_probe_round(settings, topic, 2))
    assert highwaters == {(topic, 0): 4, (topic, 1): 3}
    watch = ProgressWatch(stall_after_s=5.0)
    done = {0: 1, 1: 3}  # partition 0 stuck at offset 1, partition 1 caught up
    for second in range(7):
        watch.observe(float(second), {(topic, p): Progress(done[p], highwaters[(topic, p)] - done[p]) for p in (0, 1)})
    assert watch.stalled(6.0) == {(topic, 0): 6.0}


def test_sigterm_with_the_broker_gone_exits_zero_within_ten_seconds_and_the_outage_is_logged_once(
    settings, tmp_path: Path
) -> None:
    broker = start_tansu(tmp_path / "tansu")
    settings = replace(settings, broker=f"kafka://127.0.0.1:{broker.port}")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: _get(worker, "/readyz")[0] == 200, 120, f"readiness; log:\n{worker.log_tail()}")
        before = len(_log_lines(worker))
        broker.stop()
        time.sleep(15)
        outage = _log_lines(worker)[before:]
        # At level info the worker also says what it does (timers, retries); the flood was the
        # clients' connection errors, at warning and error.
        client_lines = [line for line in outage if line["logger"].startswith(("aiokafka", "kafka", "faust", "mode"))
                        and line["level"] in ("warning", "error", "critical")]
        print(f"{len(outage)} log lines in 15 s of outage at level info, {len(client_lines)} warnings/errors from the Kafka clients")
        # Once per process: the worker, and each of its ingest processes (their lines say which).
        started = Counter(line.get("process", "worker") for line in outage if line.get("event") == "broker_outage_started")
        assert started["worker"] == 1 and max(started.values()) == 1, started
        assert len(client_lines) <= 3, client_lines[:20]
        stopping_from = len(_log_lines(worker))
        code, seconds = stop_timed(worker)
        print(f"SIGTERM with the broker gone: exit {code} after {seconds:.2f} s")
        assert code == 0 and seconds < 10
        # A clean stop is quiet: Faust's consumer thread printed a ~100-line traceback here.
        tracebacks = [line for line in _log_lines(worker)[stopping_from:] if "Traceback" in line["msg"] or "exc" in line]
        assert not tracebacks, tracebacks[:3]
    finally:
        worker.stop()
        broker.stop()


def test_partitions_are_served_again_within_a_minute_when_a_worker_joins_and_when_one_dies(
    settings, start_worker, redis_client
) -> None:
    agencies = _one_agency_per_partition(settings.partitions)
    first = start_worker()
    wait_until(lambda: _get(first, "/readyz")[0] == 200, 120, f"readiness; log:\n{first.log_tail()}")
    sent = {agency: 0 for agency in agencies}

    def send_and_time(producer: EventProducer, run: str) -> float:
        started = time.monotonic()
        producer.send_messages(_received(agency, n, run) for agency in agencies for n in range(5))
        for agency in agencies:
            sent[agency] += 5
        wait_until(lambda: all(redis_client.hget(RedisKeys(settings.redis_prefix).agency(a, "2025-08"), "received") == str(sent[a])
                               for a in agencies), 120, "every partition served")
        return time.monotonic() - started

    with EventProducer(settings) as producer:
        send_and_time(producer, "warm")
        started = time.monotonic()
        second = start_worker(1)
        wait_until(lambda: _get(second, "/readyz")[0] == 200 and _get(first, "/readyz")[0] == 200, 120,
                   f"both workers ready; log:\n{second.log_tail()}")
        joined = time.monotonic() - started + send_and_time(producer, "join")
        first.kill()
        died = send_and_time(producer, "kill")
    print(f"rebalance: every partition served {joined:.1f} s after a second worker was started, "
          f"{died:.1f} s after one of two was SIGKILLed")
    assert joined < 60 and died < 60
