"""EMC_KAFKA_* settings reach the Kafka clients. No broker here verifies a SCRAM password
end to end (see docs/security.md: Tansu 0.6 `--authentication` refuses every SCRAM login,
the right password too, because users made with `tansu user create` do not survive the restart
that turns authentication on); what can be tested is tested: a client configured for SASL
fails clearly against a plain broker, and an authenticating Tansu refuses plain clients and
wrong passwords."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.security import aiokafka_security
from streams.local.demo import worker_environment
from streams.local.stack import RunningProcess, free_port, tansu_binary, wait_for_port

pytestmark = pytest.mark.integration


def sasl(settings, password: str = "emc-worker-dev"):
    return replace(settings, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
                   kafka_username="emc-worker", kafka_password=password)


def test_a_sasl_client_against_a_plain_broker_fails_with_a_clear_error(settings, tmp_path) -> None:
    # Through the CLI: one line, exit 1, the settings taken from EMC_KAFKA_* variables. `emc
    # publish` builds an EventProducer, whose ExternalServiceError that line is; checking it in
    # this process as well cost kafka-python's 30 s bootstrap timeout once more and proved nothing more.
    events = tmp_path / "events.jsonl"
    events.write_text('{"agency_code": "HNI"}\n')
    env = worker_environment(sasl(settings))
    result = subprocess.run([sys.executable, "-m", "streams.cli", "publish", str(events)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("emc: error: cannot reach broker")
    assert "emc-worker-dev" not in result.stderr  # the password never shows


@pytest.fixture
def authenticating_tansu(tmp_path):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path / "tansu-auth.log"
    process = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                                "--storage-engine", "memory://tansu/", "--authentication"],
                               stdout=log_path.open("ab"), stderr=subprocess.STDOUT, cwd=tmp_path)
    wait_for_port(port, 30, process, "tansu broker --authentication")
    running = RunningProcess("tansu broker", process, port, log_path)
    yield running
    running.stop()


def test_an_authenticating_tansu_refuses_plain_clients_and_wrong_passwords(settings, authenticating_tansu) -> None:
    settings = replace(settings, broker=f"kafka://127.0.0.1:{authenticating_tansu.port}")

    async def start(client_settings) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=client_settings.bootstrap_servers, request_timeout_ms=5000,
                                    **aiokafka_security(client_settings))
        try:
            await asyncio.wait_for(producer.start(), 30)
            await asyncio.wait_for(producer.send_and_wait("probe", b"x"), 30)
        finally:
            await producer.stop()

    with pytest.raises(Exception):  # noqa: B017 - refused at connection: aiokafka's error type varies
        asyncio.run(start(settings))
    with pytest.raises(Exception):  # noqa: B017 - the server answers e=unknown-user
        asyncio.run(start(sasl(settings, "a-wrong-password")))
    assert "NotAuthenticated" in authenticating_tansu.log_path.read_text()
