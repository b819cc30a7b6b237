#!/usr/bin/env python3
"""What checking an event's signature costs per event, in this process (no broker).

    .venv/bin/python benchmarks/signatures.py [--events 200000] [--value-bytes 400]

Times the ingest stage's check as the worker runs it (EventAuthenticator.signer: header
lookup, key lookup, validity window, HMAC-SHA256, constant-time compare), the producer's
signing, and, when the `cryptography` package is installed, an Ed25519 verification of the
same value, the alternative that was not chosen (docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.domain.registry import Registry  # noqa: E402
from streams.domain.signatures import Keyring, Signer  # noqa: E402
from streams.security.keyring_file import keyring_for_agencies  # noqa: E402
from streams.worker.authentication import EventAuthenticator  # noqa: E402


def per_event_us(run, n: int) -> float:
    # CPU time of this process: on a shared machine wall time mostly measures the neighbours.
    started = time.process_time()
    run(n)
    return (time.process_time() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=400)
    args = parser.parse_args()
    registry = Registry.load()
    now_us = int(time.time()) * 1_000_000
    keyring: Keyring = keyring_for_agencies([a.code for a in registry], now_us - 3_600_000_000)
    agency = next(iter(keyring)).agency
    value = (b'{"schema":"emc.dossier-event.v1","agency_code":"' + agency.encode() + b'"' +
             b" " * args.value_bytes)[: args.value_bytes]
    signer = Signer(keyring)
    headers = signer.headers(agency.encode(), value, now_us)
    failures: list = []
    authenticator = EventAuthenticator("enforce", keyring, registry, lambda a, r: failures.append(r))
    timestamp_ms = now_us // 1000

    def verify(n: int) -> None:
        check = authenticator.signer
        for _ in range(n):
            check(agency.encode(), value, headers, timestamp_ms)

    def sign(n: int) -> None:
        for _ in range(n):
            signer.headers(agency.encode(), value, now_us)

    verify(1000)  # warm up
    print(f"{len(keyring)} keys, {args.value_bytes}-byte values, {args.events:,} events")
    print(f"HMAC-SHA256 verification in the ingest check: {per_event_us(verify, args.events):.2f} µs/event")
    print(f"HMAC-SHA256 signing at the producer:        {per_event_us(sign, args.events):.2f} µs/event")
    if failures:
        raise SystemExit(f"verification failed: {failures[:3]}")
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        print("Ed25519: `cryptography` not installed, not measured")
        return 0
    private = Ed25519PrivateKey.generate()
    public, signature = private.public_key(), private.sign(value)

    def ed25519(n: int) -> None:
        for _ in range(n):
            public.verify(signature, value)

    print(f"Ed25519 verification (cryptography):        {per_event_us(ed25519, max(args.events // 10, 1000)):.2f} µs/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
