"""Typed, frozen worker settings read from flags and EMC_* environment variables.

Precedence: a command-line flag, then the environment variable, then the default. Every
value is checked here, so that a bad setting stops the CLI with one readable line
(`ConfigError`) instead of a traceback from deep inside a client library.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

from streams.domain.signatures import AUTH_MODES
from streams.errors import ConfigError

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


DEFAULT_STATE_FETCH_MAX_WAIT_MS = 100  # see Settings.state_fetch_max_wait_ms


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may hold a password
    metrics_port: int = 9108
    metrics_host: str = "0.0.0.0"
    data_dir: Path = Path("./data")
    input_topic: str = "emc.dossier-events.v1"
    dead_letter_topic: str = "emc.dossier-events.dlq.v1"
    batch_topic: str = "emc.dossier-batches.v1"
    control_topic: str = "emc.agency-control.v1"  # compacted: per-agency targets and maintenance
    bulletin_topic: str = "emc.bulletins.v1"  # compacted: published bulletins, key {period}:v{N}
    catalogue_topic: str = "emc.procedure-catalogue.v1"  # compacted: each agency's procedures and levels
    app_id: str = "emc-streams"
    partitions: int = 8
    replication_factor: int = 1
    redis_prefix: str = "emc:v1:"
    snapshot_interval_s: float = 1.0
    silent_after_s: float = 3600.0
    batch_max_events: int = 1000
    # Processes the ingest stage runs in beside the worker's own (streams/worker/ingest_process.py);
    # 0: inside the worker process.
    ingest_processes: int = 1
    log_level: str = "warn"
    worker_name: str = ""
    # A consumed partition with lag whose position has not moved for stall_after_s fails
    # /healthz; after stall_exit_s (0: never) the worker exits (code 71) for its supervisor to
    # restart it. The state stage catches a partition up by itself after 15 s
    # (streams.worker.sequence), so what is left to stall is a stage that cannot do even that.
    stall_after_s: float = 60.0
    stall_exit_s: float = 300.0
    # The fetch max wait of the worker's Faust consumer (batch topic, changelogs) and of its ingest
    # consumer (input topic). 100 ms: Tansu
    # holds a Fetch for half its wait even with records waiting (streams.worker.faust_transport).
    # Tansu on S3 storage lists every record object of a partition in each Fetch and answers
    # empty when that outlasts the wait (README "Reliability"): there, seconds.
    state_fetch_max_wait_ms: int = DEFAULT_STATE_FETCH_MAX_WAIT_MS
    # Event signatures (docs/security.md): off | audit | enforce, and the keyring file.
    auth: str = "off"
    keyring: str = ""
    # Kafka transport security, for every client (streams.kafka.security).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = field(default="", repr=False)
    kafka_ca_file: str = ""
    kafka_cert_file: str = ""
    kafka_key_file: str = ""
    # /metrics: TLS when both files are given, basic auth when a username is given.
    metrics_cert_file: str = ""
    metrics_key_file: str = ""
    metrics_username: str = ""
    metrics_password: str = field(default="", repr=False)
    # Where other workers and `emc reconcile` reach this worker's metrics port (the dossier
    # endpoint, streams/worker/dossier_api.py); empty: http(s)://HOST:METRICS_PORT, HOST the
    # metrics host unless it is a wildcard address, else this machine's host name.
    advertised_url: str = ""

    # -- derived -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        """`host:port[,host:port]` for kafka-python and aiokafka."""
        return ",".join(urlparse(url).netloc for url in self.broker.split(";"))

    @property
    def worker_url(self) -> str:
        """The URL this worker's metrics port is reached at (EMC_ADVERTISED_URL, or derived)."""
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        scheme = "https" if self.metrics_cert_file else "http"
        host = self.metrics_host if self.metrics_host not in ("", "0.0.0.0", "::") else socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.metrics_port}"

    @property
    def ingest_group(self) -> str:
        return f"{self.app_id}-ingest"


# setting name -> environment variable
ENV_VARS: dict[str, str] = {
    "broker": "EMC_BROKER",
    "redis_url": "EMC_REDIS_URL",
    "metrics_port": "EMC_METRICS_PORT",
    "metrics_host": "EMC_METRICS_HOST",
    "data_dir": "EMC_DATA_DIR",
    "input_topic": "EMC_INPUT_TOPIC",
    "dead_letter_topic": "EMC_DEAD_LETTER_TOPIC",
    "batch_topic": "EMC_BATCH_TOPIC",
    "control_topic": "EMC_CONTROL_TOPIC",
    "bulletin_topic": "EMC_BULLETIN_TOPIC",
    "catalogue_topic": "EMC_CATALOGUE_TOPIC",
    "app_id": "EMC_APP_ID",
    "partitions": "EMC_PARTITIONS",
    "replication_factor": "EMC_REPLICATION_FACTOR",
    "redis_prefix": "EMC_REDIS_PREFIX",
    "snapshot_interval_s": "EMC_SNAPSHOT_INTERVAL",
    "silent_after_s": "EMC_SILENT_AFTER",
    "batch_max_events": "EMC_BATCH_MAX_EVENTS",
    "ingest_processes": "EMC_INGEST_PROCESSES",
    "log_level": "EMC_LOG_LEVEL",
    "worker_name": "EMC_WORKER_NAME",
    "stall_after_s": "EMC_STALL_AFTER",
    "stall_exit_s": "EMC_STALL_EXIT_AFTER",
    "state_fetch_max_wait_ms": "EMC_STATE_FETCH_MAX_WAIT_MS",
    "auth": "EMC_AUTH",
    "keyring": "EMC_KEYRING",
    "kafka_security_protocol": "EMC_KAFKA_SECURITY_PROTOCOL",
    "kafka_sasl_mechanism": "EMC_KAFKA_SASL_MECHANISM",
    "kafka_username": "EMC_KAFKA_USERNAME",
    "kafka_password": "EMC_KAFKA_PASSWORD",
    "kafka_ca_file": "EMC_KAFKA_CA_FILE",
    "kafka_cert_file": "EMC_KAFKA_CERT_FILE",
    "kafka_key_file": "EMC_KAFKA_KEY_FILE",
    "metrics_cert_file": "EMC_METRICS_CERT_FILE",
    "metrics_key_file": "EMC_METRICS_KEY_FILE",
    "metrics_username": "EMC_METRICS_USERNAME",
    "metrics_password": "EMC_METRICS_PASSWORD",
    "advertised_url": "EMC_ADVERTISED_URL",
}

LOG_LEVELS = ("crit", "error", "warn", "info", "debug")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def load_settings(flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from flags (None = not given) over EMC_* variables over defaults."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for setting in fields(Settings):
        name = setting.name
        if flags.get(name) is not None:
            raw[name] = flags[name]
        elif ENV_VARS[name] in environ and environ[ENV_VARS[name]] != "":
            raw[name] = environ[ENV_VARS[name]]
    return _checked(raw)


def _checked(raw: dict[str, object]) -> Settings:
    values: dict[str, object] = {}
    for setting in fields(Settings):
        if setting.name not in raw:
            continue
        value, source = raw[setting.name], f"{ENV_VARS[setting.name]} / --{setting.name.replace('_', '-')}"
        if setting.type in ("int", int):
            values[setting.name] = _as_int(value, source)
        elif setting.type in ("float", float):
            values[setting.name] = _as_float(value, source)
        elif setting.type in ("Path", Path):
            values[setting.name] = Path(str(value))
        else:
            values[setting.name] = str(value)
    settings = Settings(**values)  # type: ignore[arg-type]
    _validate(settings)
    return settings


def _as_int(value: object, source: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{source}: expected an integer, got {value!r}") from None


def _as_float(value: object, source: str) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise ConfigError(f"{source}: expected a number, got {value!r}") from None


def _validate(s: Settings) -> None:
    for url in s.broker.split(";"):
        parsed = urlparse(url)
        if parsed.scheme != "kafka" or not parsed.hostname or parsed.port is None:
            raise ConfigError(f"EMC_BROKER / --broker: expected kafka://HOST:PORT, got {s.broker!r}")
    parsed = urlparse(s.redis_url)
    if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
        raise ConfigError(f"EMC_REDIS_URL / --redis-url: expected redis://HOST:PORT/DB, got {s.redis_url!r}")
    if not 0 <= s.metrics_port <= 65535:
        raise ConfigError(f"EMC_METRICS_PORT / --metrics-port: {s.metrics_port} is not a TCP port")
    for name in ("input_topic", "dead_letter_topic", "batch_topic", "control_topic", "bulletin_topic", "catalogue_topic"):
        if not _TOPIC_NAME.match(getattr(s, name)):
            raise ConfigError(f"--{name.replace('_', '-')}: {getattr(s, name)!r} is not a valid Kafka topic name")
    if len({s.input_topic, s.dead_letter_topic, s.batch_topic, s.control_topic, s.bulletin_topic, s.catalogue_topic}) != 6:
        raise ConfigError("input, dead-letter, batch, control, bulletin and catalogue topics must be six different topics")
    if not 1 <= s.partitions <= 1024:
        raise ConfigError(f"EMC_PARTITIONS / --partitions: {s.partitions} is not in 1..1024")
    if s.replication_factor < 1:
        raise ConfigError("EMC_REPLICATION_FACTOR / --replication-factor: must be at least 1")
    if not s.redis_prefix.endswith(":"):
        raise ConfigError(f"EMC_REDIS_PREFIX / --redis-prefix: {s.redis_prefix!r} must end with ':'")
    if not 0.05 <= s.snapshot_interval_s <= 5.0:
        raise ConfigError("EMC_SNAPSHOT_INTERVAL: must be between 0.05 and 5 seconds (snapshots are due within 5 s)")
    if s.silent_after_s <= 0:
        raise ConfigError("EMC_SILENT_AFTER: must be a positive number of seconds")
    if not 1 <= s.batch_max_events <= 10_000:
        raise ConfigError("EMC_BATCH_MAX_EVENTS: must be in 1..10000")
    if not 0 <= s.ingest_processes <= 16:
        raise ConfigError(f"EMC_INGEST_PROCESSES: {s.ingest_processes} is not in 0..16 (0: ingest inside the worker process)")
    if s.stall_after_s < 5 or (s.stall_exit_s and s.stall_exit_s < s.stall_after_s):
        raise ConfigError("EMC_STALL_AFTER / EMC_STALL_EXIT_AFTER: need 5 <= EMC_STALL_AFTER <= EMC_STALL_EXIT_AFTER seconds (0: never exit)")
    if not 10 <= s.state_fetch_max_wait_ms <= 30_000:
        raise ConfigError(f"EMC_STATE_FETCH_MAX_WAIT_MS: {s.state_fetch_max_wait_ms} is not in 10..30000 (milliseconds)")
    if s.advertised_url:
        parsed = urlparse(s.advertised_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
            raise ConfigError(f"EMC_ADVERTISED_URL: expected http(s)://HOST:PORT, got {s.advertised_url!r}")
    if s.log_level not in LOG_LEVELS:
        raise ConfigError(f"EMC_LOG_LEVEL / --log-level: {s.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    _validate_security(s)


def _validate_security(s: Settings) -> None:
    if s.auth not in AUTH_MODES:
        raise ConfigError(f"EMC_AUTH / --auth: {s.auth!r} is not one of {', '.join(AUTH_MODES)}")
    if s.auth != "off" and not s.keyring:
        raise ConfigError(f"EMC_AUTH={s.auth} needs a keyring: EMC_KEYRING / --keyring")
    if s.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise ConfigError(f"EMC_KAFKA_SECURITY_PROTOCOL: {s.kafka_security_protocol!r} is not one of "
                          f"{', '.join(KAFKA_SECURITY_PROTOCOLS)}")
    if s.kafka_security_protocol.startswith("SASL"):
        if s.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ConfigError(f"EMC_KAFKA_SASL_MECHANISM: {s.kafka_sasl_mechanism!r} is not one of "
                              f"{', '.join(KAFKA_SASL_MECHANISMS)}")
        if not s.kafka_username or not s.kafka_password:
            raise ConfigError(f"EMC_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs "
                              "EMC_KAFKA_USERNAME and EMC_KAFKA_PASSWORD")
    if bool(s.kafka_cert_file) != bool(s.kafka_key_file):
        raise ConfigError("EMC_KAFKA_CERT_FILE and EMC_KAFKA_KEY_FILE go together")
    if bool(s.metrics_cert_file) != bool(s.metrics_key_file):
        raise ConfigError("EMC_METRICS_CERT_FILE and EMC_METRICS_KEY_FILE go together")
    if bool(s.metrics_username) != bool(s.metrics_password):
        raise ConfigError("EMC_METRICS_USERNAME and EMC_METRICS_PASSWORD go together")
    for name in ("kafka_ca_file", "kafka_cert_file", "kafka_key_file", "metrics_cert_file", "metrics_key_file"):
        value = getattr(s, name)
        if value and not Path(value).is_file():
            raise ConfigError(f"{ENV_VARS[name]}: {value}: no such file")


def redacted_url(url: str) -> str:
    """A URL fit for logs and screens: its password replaced by `***`."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.rsplit("@", 1)[1]
    user = f"{parsed.username}:" if parsed.username else ":"
    return parsed._replace(netloc=f"{user}***@{netloc}").geturl()
