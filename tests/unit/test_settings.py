"""Settings: flags over EMC_* variables over defaults; a bad one is one readable line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.errors import ConfigError
from streams.settings import Settings, load_settings


def test_flags_win_over_environment_over_defaults() -> None:
    env = {"EMC_BROKER": "kafka://10.0.0.1:9092", "EMC_METRICS_PORT": "9200", "EMC_DATA_DIR": "/var/lib/emc"}
    settings = load_settings({"metrics_port": "9300"}, environ=env)
    assert settings.broker == "kafka://10.0.0.1:9092"
    assert settings.metrics_port == 9300
    assert settings.data_dir == Path("/var/lib/emc")
    assert settings.redis_url == Settings().redis_url
    assert settings.bootstrap_servers == "10.0.0.1:9092"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMC_BROKER": "localhost:9092"}, "kafka://HOST:PORT"),
        ({"EMC_REDIS_URL": "http://x"}, "redis://"),
        ({"EMC_METRICS_PORT": "abc"}, "expected an integer"),
        ({"EMC_METRICS_PORT": "70000"}, "not a TCP port"),
        ({"EMC_PARTITIONS": "0"}, "1..1024"),
        ({"EMC_LOG_LEVEL": "loud"}, "not one of"),
        ({"EMC_SNAPSHOT_INTERVAL": "10"}, "within 5 s"),
        ({"EMC_INPUT_TOPIC": "bad topic"}, "not a valid Kafka topic name"),
        ({"EMC_STATE_FETCH_MAX_WAIT_MS": "5"}, "not in 10..30000"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_settings({}, environ=env)


def test_the_cli_stops_with_one_line_on_a_bad_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--metrics-port", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["emc: error: EMC_METRICS_PORT / --metrics-port: expected an integer, got 'nope'"]


def test_the_cli_stops_with_one_line_on_an_unknown_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "worker", "--bogus"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_cli_ends_quietly_when_its_reader_goes_away() -> None:
    # `emc registry list | head -1`: the reader is gone before the output is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "registry", "list"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 128 + 13


# -- security settings (docs/security.md) -------------------------------------------------------

def test_kafka_security_settings_build_the_same_kwargs_for_every_client(tmp_path) -> None:
    import ssl

    from streams.kafka.security import aiokafka_security, faust_credentials, kafka_python_security

    plain = load_settings(environ={})
    assert aiokafka_security(plain) == {"security_protocol": "PLAINTEXT"} and faust_credentials(plain) is None
    env = {"EMC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "EMC_KAFKA_USERNAME": "emc-worker", "EMC_KAFKA_PASSWORD": "pw"}
    secured = load_settings(environ=env)
    kwargs = aiokafka_security(secured)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("emc-worker", "pw")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext) and kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kafka_python_security(secured).keys() == kwargs.keys()
    credentials = faust_credentials(secured)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == ("emc-worker", "pw", "SCRAM-SHA-512")
    assert "pw" not in repr(secured)  # passwords stay out of reprs (and so out of logs)


@pytest.mark.parametrize(("env", "message"), [
    ({"EMC_AUTH": "maybe"}, "EMC_AUTH"),
    ({"EMC_AUTH": "enforce"}, "needs a keyring"),
    ({"EMC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "EMC_KAFKA_USERNAME and EMC_KAFKA_PASSWORD"),
    ({"EMC_KAFKA_SECURITY_PROTOCOL": "TLS"}, "EMC_KAFKA_SECURITY_PROTOCOL"),
    ({"EMC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "EMC_KAFKA_USERNAME": "u", "EMC_KAFKA_PASSWORD": "p",
      "EMC_KAFKA_SASL_MECHANISM": "GSSAPI"}, "EMC_KAFKA_SASL_MECHANISM"),
    ({"EMC_KAFKA_CA_FILE": "/no/such/ca.pem"}, "no such file"),
    ({"EMC_METRICS_USERNAME": "prometheus"}, "go together"),
    ({"EMC_METRICS_CERT_FILE": "/etc/hostname"}, "go together"),
])
def test_bad_security_settings_stop_with_one_line(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


def test_redis_passwords_are_redacted() -> None:
    from streams.settings import redacted_url

    assert redacted_url("redis://emc-writer:s3cret@redis:6379/0") == "redis://emc-writer:***@redis:6379/0"
    assert redacted_url("rediss://:s3cret@redis:6380/0") == "rediss://:***@redis:6380/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in repr(load_settings(environ={"EMC_REDIS_URL": "redis://emc-writer:s3cret@redis:6379/0"}))
