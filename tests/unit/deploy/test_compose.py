"""The production-shaped stack: docker-compose.yml and the Dockerfile.

No Docker engine runs here: `docker-compose config` (pip package docker-compose, which
dev.py installs into .venv-compose because it pins PyYAML < 6) validates the file and
resolves it; the tests then check it against the repository and the contract: every
bind-mounted path exists, the workers are configured with exactly the contract's EMC_*
variables, and Prometheus, Alertmanager and Grafana point at the compose services.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from streams.settings import ENV_VARS, load_settings
from tests.support.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"

# Contract section 6: the settings a worker takes from its environment.
CONTRACT_ENV = {"EMC_BROKER", "EMC_REDIS_URL", "EMC_METRICS_PORT", "EMC_DATA_DIR"}


def _docker_compose() -> str | None:
    return shutil.which("docker-compose") or next(
        (str(p) for p in [REPO_ROOT / ".venv-compose" / "bin" / "docker-compose"] if p.exists()), None
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it (anchors merged, paths absolute)."""
    command = _docker_compose()
    if command is None:
        pytest.skip("docker-compose not installed (pip package docker-compose; dev.py puts it in .venv-compose)")
    # The project's own variables must not leak into the resolved file.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_", "EMC_"))}
    result = subprocess.run([command, "-f", str(COMPOSE_FILE), "config"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _workers(compose: dict) -> dict[str, dict]:
    """Services built from this repository's Dockerfile that run `emc worker`."""
    return {name: service for name, service in compose["services"].items()
            if "build" in service and service.get("command") in (None, ["worker"])}


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of a service's bind mounts; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith(("/", ".")):
            mounts.append((source, target))
    return mounts


def _mount_source(service: dict, container_path: str) -> Path:
    sources = [Path(source) for source, target in _bind_mounts(service) if target == container_path]
    assert sources, f"nothing mounted at {container_path}"
    return sources[0]


def test_every_bind_mount_is_a_path_of_the_repository(compose: dict) -> None:
    mounts = [(name, source) for name, service in compose["services"].items() for source, _ in _bind_mounts(service)]
    assert mounts
    for name, source in mounts:
        path = Path(source)
        assert path.is_relative_to(REPO_ROOT), f"{name}: {source} is outside the repository"
        assert path.exists(), f"{name}: {source} does not exist"


def test_two_workers_are_built_from_the_dockerfile(compose: dict) -> None:
    workers = _workers(compose)
    assert len(workers) == 2
    for name, service in workers.items():
        assert Path(service["build"]["context"]) == REPO_ROOT, name
        assert (REPO_ROOT / service["build"].get("dockerfile", "Dockerfile")).exists()
        assert service.get("command") in (None, ["worker"]), name


def test_workers_are_configured_with_the_contract_variables_and_security_settings(compose: dict) -> None:
    assert CONTRACT_ENV <= set(ENV_VARS.values())  # the worker reads them
    services = compose["services"]
    for name, service in _workers(compose).items():
        environment = service["environment"]
        assert CONTRACT_ENV <= set(environment) <= set(ENV_VARS.values()), name
        settings = load_settings(environ={key: str(value) for key, value in environment.items()})  # valid values
        broker_host = settings.bootstrap_servers.split(":")[0]
        assert broker_host in services and services[broker_host]["image"].startswith("apache/kafka"), name
        assert urlparse(settings.redis_url).hostname in services, name
        # Least privilege (docs/security.md): SASL to Kafka, the Redis writer, signatures enforced.
        assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512"), name
        assert urlparse(settings.redis_url).username == "emc-writer" and settings.auth == "enforce", name
        assert str(Path(settings.keyring).parent) in {str(v).split(":")[1] for v in service["volumes"]}, name
        # The table store is on a volume of its own.
        mounted = {volume.split(":")[1] if isinstance(volume, str) else volume["target"]
                   for volume in service["volumes"]}
        assert str(settings.data_dir) in mounted, name


def test_kafka_runs_in_kraft_mode_without_zookeeper(compose: dict) -> None:
    services = compose["services"]
    kafka = [service for service in services.values() if "KAFKA_PROCESS_ROLES" in service.get("environment", {})]
    assert len(kafka) == 1
    assert set(kafka[0]["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("zookeeper" in (name + service.get("image", "")).lower() for name, service in services.items())


def test_kafka_takes_only_scram_from_the_network_and_grants_only_what_setup_allows(compose: dict) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(item.split("://") for item in kafka["KAFKA_LISTENERS"].split(","))
    for name, address in listeners.items():
        if name != "CONTROLLER" and not address.startswith("127.0.0.1:"):
            assert protocols[name] == "SASL_PLAINTEXT", name
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false" and "StandardAuthorizer" in kafka["KAFKA_AUTHORIZER_CLASS_NAME"]
    setup = compose["services"]["kafka-setup"]
    script = _mount_source(setup, "/setup-security.sh").read_text()
    assert setup["network_mode"] == "service:kafka"
    # Producers may only WRITE (and describe) the input topic.
    assert [line.split()[2:] for line in script.splitlines() if line.startswith("allow emc-producer")] == [
        ["--operation", "Write", "--operation", "Describe", "--topic", "emc.dossier-events.v1"]]
    assert any(line.startswith("allow emc-operator --operation Read") and "emc.dossier-events.dlq.v1" in line
               for line in script.splitlines())
    for worker in _workers(compose).values():
        assert worker["depends_on"]["kafka-setup"]["condition"] == "service_completed_successfully"
        assert worker["depends_on"]["keyring-init"]["condition"] == "service_completed_successfully"


def test_redis_has_no_default_user_and_the_shipped_acl_file(compose: dict) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else redis["command"].split()
    acl = _mount_source(redis, command[command.index("--aclfile") + 1])
    assert acl == REPO_ROOT / "streams" / "data" / "redis-users.acl"  # the file `emc local` starts redis-server with
    assert "user default off" in acl.read_text().splitlines()


def test_the_keyring_is_generated_once_into_its_volume(compose: dict) -> None:
    init = compose["services"]["keyring-init"]
    assert init["command"] == ["keys", "new", "--all", "--keyring", "/keys/keyring.json"]
    assert any(str(v).startswith("emc-keys:/keys") or (isinstance(v, dict) and v.get("source") == "emc-keys")
               for v in init["volumes"])


def test_redis_persists_to_an_append_only_file(compose: dict) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else redis["command"].split()
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(volume).split(":")[1] == "/data" for volume in redis["volumes"])


def test_prometheus_scrapes_every_worker_and_sends_to_alertmanager(compose: dict) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {target for static in jobs["emc-worker"]["static_configs"] for target in static["targets"]}
    workers = _workers(compose)
    assert targets == {f"{name}:{service['environment']['EMC_METRICS_PORT']}" for name, service in workers.items()}
    alertmanagers = {t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]}
    assert alertmanagers == {"alertmanager:9093"} and "alertmanager" in compose["services"]


def test_prometheus_gets_its_config_and_rules(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    assert _mount_source(prometheus, "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    # rule_files are relative to the config file, so the rules go next to it.
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    rules_dir = _mount_source(prometheus, "/etc/prometheus/rules")
    for rule_file in config["rule_files"]:
        assert rule_file.startswith("rules/")
        assert (rules_dir / rule_file.removeprefix("rules/")).exists(), rule_file
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_alertmanager_gets_its_config(compose: dict) -> None:
    alertmanager = compose["services"]["alertmanager"]
    assert _mount_source(alertmanager, "/etc/alertmanager/alertmanager.yml") == \
        REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def test_grafana_gets_provisioning_dashboards_and_datasource(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    assert _mount_source(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "emc.yml").read_text(encoding="utf-8"))
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert _mount_source(grafana, dashboards_path) == REPO_ROOT / "deploy" / "grafana" / "dashboards"
    datasource = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]


def test_dockerfile_runs_emc_worker_from_python_3_11_slim() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)[-1] == "python:3.11-slim"
    assert re.search(r'^ENTRYPOINT \["emc"\]$', text, flags=re.MULTILINE)
    assert re.search(r'^CMD \["worker"\]$', text, flags=re.MULTILINE)
    # Everything it copies from the build context exists.
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE):
        for source in line.split()[:-1]:
            assert (REPO_ROOT / source).exists(), f"Dockerfile copies missing {source}"
