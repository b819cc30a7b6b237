"""Event signatures: which agency wrote an event (pure: no I/O).

Kafka ACLs stop at the topic, so every event carries proof of its agency: two headers,

    emc-key-id     the id of one of the agency's keys (ASCII)
    emc-signature  lowercase hex of HMAC-SHA256(key = the key's secret as ASCII bytes,
                   message = the record value, byte for byte as sent)

HMAC, not Ed25519: verifying an HMAC-SHA256 of a 400-byte value costs a few µs in CPython,
an Ed25519 verification ~160 µs, more than the rest of the pipeline spends on an event. The
price is that the keyring holds the agencies' secrets, so it is a secret itself.

A key is valid from `valid_from` (inclusive) until `valid_until` (exclusive, open when None),
judged at the record's Kafka timestamp: it is fixed when the record is written, so a replay
after a crash judges every event exactly as the first reading did.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from streams.domain.events import rfc3339_to_us
from streams.domain.instants import us_to_rfc3339
from streams.errors import InvalidEvent, KeyringError, Unauthenticated

KEY_ID_HEADER = "emc-key-id"
SIGNATURE_HEADER = "emc-signature"

AUTH_MODES = ("off", "audit", "enforce")

# Why an event is not authenticated: the `reason` label of emc_unauthenticated_events_total.
MISSING_SIGNATURE = "missing_signature"
UNKNOWN_KEY = "unknown_key"
KEY_NOT_VALID = "key_not_valid"
WRONG_AGENCY = "wrong_agency"
BAD_SIGNATURE = "bad_signature"
FAILURE_REASONS = (MISSING_SIGNATURE, UNKNOWN_KEY, KEY_NOT_VALID, WRONG_AGENCY, BAD_SIGNATURE)

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECRET_PATTERN = re.compile(r"^[0-9a-f]{64}$")  # 32 random bytes, written in lowercase hex


@dataclass(frozen=True, slots=True)
class AgencyKey:
    key_id: str
    agency: str
    secret: str = ""  # never printed: repr hides it
    valid_from_us: int = 0
    valid_until_us: int | None = None

    def __post_init__(self) -> None:
        if not KEY_ID_PATTERN.match(self.key_id):
            raise KeyringError(f"key id {self.key_id!r}: 1-64 characters of A-Z a-z 0-9 . _ -")
        if not self.agency:
            raise KeyringError(f"key {self.key_id}: no agency")
        if not SECRET_PATTERN.match(self.secret):
            raise KeyringError(f"key {self.key_id}: the secret must be 64 lowercase hex characters")
        if self.valid_until_us is not None and self.valid_until_us <= self.valid_from_us:
            raise KeyringError(f"key {self.key_id}: valid_until is not after valid_from")

    def __repr__(self) -> str:
        return f"AgencyKey({self.key_id!r}, agency={self.agency!r}, valid {self.validity_text()})"

    def is_valid_at(self, at_us: int) -> bool:
        return self.valid_from_us <= at_us and (self.valid_until_us is None or at_us < self.valid_until_us)

    def validity_text(self) -> str:
        until = "open" if self.valid_until_us is None else us_to_rfc3339(self.valid_until_us)
        return f"from {us_to_rfc3339(self.valid_from_us)} until {until}"


def signature_of(secret: str, value: bytes) -> str:
    """The canonical signature of a record value: lowercase hex HMAC-SHA256, key = secret's ASCII."""
    return hmac.digest(secret.encode("ascii"), value, "sha256").hex()  # one-shot: the fast path


def signature_headers(key: AgencyKey, value: bytes) -> list[tuple[str, bytes]]:
    """The two headers a producer sends with `value`."""
    return [(KEY_ID_HEADER, key.key_id.encode("ascii")), (SIGNATURE_HEADER, signature_of(key.secret, value).encode("ascii"))]


class Keyring:
    """The agencies' keys by key id; several keys of one agency may overlap in time (rotation)."""

    def __init__(self, keys: Iterable[AgencyKey]) -> None:
        self._keys: dict[str, AgencyKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise KeyringError(f"key id {key.key_id} appears twice")
            self._keys[key.key_id] = key

    def __iter__(self) -> Iterator[AgencyKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key_id: str) -> AgencyKey | None:
        return self._keys.get(key_id)

    def signing_key(self, agency: str, at_us: int) -> AgencyKey | None:
        """The key a producer of `agency` signs with at `at_us`: of the valid ones, the newest."""
        valid = [k for k in self._keys.values() if k.agency == agency and k.is_valid_at(at_us)]
        return max(valid, key=lambda k: (k.valid_from_us, k.key_id), default=None)

    def with_key(self, key: AgencyKey) -> Keyring:
        return Keyring([*self._keys.values(), key])

    def verify(self, headers: Mapping[str, bytes], value: bytes, at_us: int) -> AgencyKey:
        """The key that signed `value`, valid at `at_us`; raises Unauthenticated otherwise.

        The agency is checked by the caller against the event's agency_code (`check_agency`),
        once the value is parsed: a signature is checked before the bytes are even read.
        """
        key_id_raw, signature_raw = headers.get(KEY_ID_HEADER), headers.get(SIGNATURE_HEADER)
        if key_id_raw is None or signature_raw is None:
            missing = " and ".join(h for h, v in ((KEY_ID_HEADER, key_id_raw), (SIGNATURE_HEADER, signature_raw)) if v is None)
            raise Unauthenticated(MISSING_SIGNATURE, f"no {missing} header")
        key_id = key_id_raw.decode("ascii", errors="backslashreplace")
        key = self._keys.get(key_id)
        if key is None:
            raise Unauthenticated(UNKNOWN_KEY, f"key id {key_id[:64]!r} is not in the keyring")
        if not key.is_valid_at(at_us):
            raise Unauthenticated(KEY_NOT_VALID, f"key {key_id} is valid {key.validity_text()}, "
                                                 f"not at the record's time {us_to_rfc3339(at_us)}")
        expected = signature_of(key.secret, value).encode("ascii")
        if not hmac.compare_digest(expected, signature_raw):
            raise Unauthenticated(BAD_SIGNATURE, f"signature does not match the value's bytes (key {key_id})")
        return key


def check_agency(key: AgencyKey, agency_code: str) -> None:
    """A key only proves events of its own agency."""
    if key.agency != agency_code:
        raise Unauthenticated(WRONG_AGENCY, f"key {key.key_id} belongs to {key.agency}, the event names {agency_code!r}")


def us_of_rfc3339(text: str, what: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp with an offset (no naive times)."""
    try:
        return rfc3339_to_us(text)
    except InvalidEvent as exc:
        raise KeyringError(f"{what}: {exc.detail}") from None


class Signer:
    """A producer's side: the headers of each message, signed with its agency's newest key.

    The message key is the agency code (contract section 1). A message without a key, or of
    an agency without a valid key, goes unsigned (and is counted in `unsigned`): the worker
    then dead-letters or meters it, which is what its producer needs to see.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._current: dict[bytes, AgencyKey] = {}
        self.unsigned = 0

    def headers(self, key: bytes | None, value: bytes, at_us: int) -> list[tuple[str, bytes]] | None:
        if key is None:
            self.unsigned += 1
            return None
        signing = self._current.get(key)
        if signing is None or not signing.is_valid_at(at_us):
            signing = self._keyring.signing_key(key.decode("utf-8", errors="replace"), at_us)
            if signing is None:
                self.unsigned += 1
                return None
            self._current[key] = signing
        return signature_headers(signing, value)
