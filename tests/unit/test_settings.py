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
