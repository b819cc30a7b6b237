"""/metrics with TLS and basic auth (a real HTTPS server on a free port, a self-signed
certificate made by openssl), and the matching Prometheus scrape config (promtool)."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.local.stack import free_port
from streams.settings import load_settings
from streams.sinks.metrics_server import metrics_basic_auth, metrics_tls_context
from streams.worker.health import Health, serve_http
from tests.support.paths import REPO_ROOT as ROOT  # noqa: E402

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _get(url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@needs_openssl
def test_metrics_over_tls_with_basic_auth_and_open_health_probes(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    port = free_port()
    settings = load_settings({"metrics_port": port, "metrics_host": "127.0.0.1", "metrics_cert_file": str(cert),
                              "metrics_key_file": str(key), "metrics_username": "prometheus",
                              "metrics_password": "s3cret"}, environ={})
    registry = CollectorRegistry()
    Counter("emc_probe", "a probe", registry=registry).inc()
    server = serve_http("127.0.0.1", port, registry, Health(stall_after_s=60),
                        tls_context=metrics_tls_context(settings), basic_auth=metrics_basic_auth(settings))
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{port}"
        assert _get(f"{base}/metrics", trusted)[0] == 401
        assert _get(f"{base}/metrics", trusted, ("prometheus", "wrong"))[0] == 401
        status, body = _get(f"{base}/metrics", trusted, ("prometheus", "s3cret"))
        assert status == 200 and "emc_probe_total 1.0" in body
        assert _get(f"{base}/healthz", trusted)[0] == 200  # probes carry no credentials
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is not served
            _get(f"http://127.0.0.1:{port}/metrics", auth=("prometheus", "s3cret"))
    finally:
        server.shutdown()
        server.server_close()


def test_without_settings_metrics_stay_plain_and_open() -> None:
    port = free_port()
    registry = CollectorRegistry()
    Counter("emc_probe", "a probe", registry=registry).inc()
    settings = load_settings({"metrics_port": port, "metrics_host": "127.0.0.1"}, environ={})
    assert metrics_tls_context(settings) is None and metrics_basic_auth(settings) is None
    server = serve_http("127.0.0.1", port, registry, Health(stall_after_s=60))
    try:
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "emc_probe_total 1.0" in body
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_the_tls_scrape_config_is_valid_prometheus_config(tmp_path: Path) -> None:
    config = ROOT / "deploy" / "prometheus" / "prometheus-tls.yml"
    text = config.read_text()
    assert "scheme: https" in text and "basic_auth" in text and "job_name: emc-worker" in text
    # promtool resolves rule and credential files relative to the config: check a copy beside stand-ins.
    copy = tmp_path / "prometheus-tls.yml"
    shutil.copytree(ROOT / "deploy" / "prometheus" / "rules", tmp_path / "rules")
    (tmp_path / "secrets").mkdir()
    for name in ("emc-metrics-ca.pem", "emc-metrics-password"):
        (tmp_path / "secrets" / name).write_text("x")
    copy.write_text(text.replace("/etc/prometheus/secrets/", str(tmp_path / "secrets") + "/"))
    result = subprocess.run(["promtool", "check", "config", "--syntax-only", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
