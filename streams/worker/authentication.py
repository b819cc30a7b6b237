"""Checking each input event's signature in the ingest stage (EMC_AUTH=off|audit|enforce).

`enforce` turns a failed check into the dead letter `unauthenticated` (the event is never
counted); `audit` lets the event through and only meters it, so that a deployment can switch
its producers over to signing before enforcing. Both meter every failure in
`emc_unauthenticated_events_total{agency,reason}`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from streams.domain.registry import Registry
from streams.domain.signatures import AgencyKey, Keyring, check_agency
from streams.errors import InvalidEvent, Unauthenticated

UNAUTHENTICATED = "unauthenticated"  # the dead-letter reason


class EventAuthenticator:
    def __init__(self, mode: str, keyring: Keyring, registry: Registry,
                 on_failure: Callable[[str, str], None]) -> None:
        self._enforce = mode == "enforce"
        self._keyring = keyring
        self._registry = registry
        self._on_failure = on_failure  # (agency label, reason)

    def signer(self, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]], timestamp_ms: int) -> AgencyKey | None:
        """The key that signed the record, checked before its bytes are read; None when the
        check failed in audit mode. Raises InvalidEvent("unauthenticated") in enforce mode."""
        try:
            return self._keyring.verify(dict(headers), value, timestamp_ms * 1000)
        except Unauthenticated as exc:
            self._failed(exc, key.decode("utf-8", errors="replace") if key else "")
            return None

    def check_agency(self, signer: AgencyKey | None, agency_code: str) -> None:
        """Once the event is parsed: its agency must be the signing key's."""
        if signer is None:
            return
        try:
            check_agency(signer, agency_code)
        except Unauthenticated as exc:
            self._failed(exc, agency_code)

    def _failed(self, exc: Unauthenticated, claimed_agency: str) -> None:
        # The label is bounded by the registry: anyone can write any bytes as the key.
        self._on_failure(claimed_agency if claimed_agency in self._registry else "unknown", exc.reason)
        if self._enforce:
            raise InvalidEvent(UNAUTHENTICATED, f"{exc.reason}: {exc.detail}")
