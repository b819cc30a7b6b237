"""docs/operating.md describes the docker-compose deployment that is in the repository: every
service, named volume, secret and published port of docker-compose.yml is named in it, so a
change to the compose file fails here until the operator's guide follows."""

from __future__ import annotations

import yaml

from tests.unit.docs.markdown import REPO_ROOT, inline_code

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
OPERATING = REPO_ROOT / "docs" / "operating.md"


def _documented() -> str:
    """Every inline code span of the guide, space-separated, for substring checks."""
    return " ".join(inline_code(OPERATING))


def test_every_service_volume_secret_and_port_is_in_the_operating_guide() -> None:
    spans = set(inline_code(OPERATING))
    text = _documented()
    missing = []
    services = COMPOSE["services"]
    assert "kafka" in services and "redis" in services, f"docker-compose.yml not read: {sorted(services)}"
    for name, service in services.items():
        if name not in spans and not any(name in span.split(", ") for span in spans):
            missing.append(f"service `{name}`: a row in the table of 'The stack'")
        for port in service.get("ports", []):
            published = str(port).split(":")[0]
            if published not in text:
                missing.append(f"port `{port}` of service `{name}`: in its row's ports column")
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret["source"]
            if secret_name not in spans:
                missing.append(f"secret `{secret_name}` of service `{name}`: under **Secrets**")
    for volume in COMPOSE.get("volumes", {}) or {}:
        if volume not in text:
            missing.append(f"volume `{volume}`: in the volume column of its service and in 'Backups'")
    for secret in COMPOSE.get("secrets", {}) or {}:
        if secret not in spans:
            missing.append(f"secret `{secret}`: under **Secrets**")
    assert not missing, "docs/operating.md does not describe all of docker-compose.yml; add:\n" + "\n".join(
        f"  {item}" for item in missing)
