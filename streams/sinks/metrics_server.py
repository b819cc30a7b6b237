"""Optional TLS and HTTP basic auth of the worker's /metrics (served by streams/worker/health.py
with /healthz and /readyz on the same port).

prometheus_client's own server takes a certificate but has no basic auth, and the worker's
server is its own; these build what it needs from the settings. Health probes stay
unauthenticated: a liveness or readiness probe carries no credentials, and a health answer
discloses nothing.
"""

from __future__ import annotations

import base64
import hmac
import ssl

from streams.settings import Settings


def metrics_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A server context (TLS 1.2 or later) when EMC_METRICS_CERT_FILE and _KEY_FILE are set."""
    if not settings.metrics_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.metrics_cert_file, settings.metrics_key_file)
    return context


def metrics_basic_auth(settings: Settings) -> bytes | None:
    """The Authorization header value /metrics requires, when EMC_METRICS_USERNAME is set."""
    if not settings.metrics_username:
        return None
    return b"Basic " + base64.b64encode(f"{settings.metrics_username}:{settings.metrics_password}".encode())


def authorized(header: str | None, expected: bytes | None) -> bool:
    """Whether a request's Authorization header passes (always, without basic auth); constant time."""
    if expected is None:
        return True
    return hmac.compare_digest((header or "").encode("latin-1", errors="replace"), expected)
