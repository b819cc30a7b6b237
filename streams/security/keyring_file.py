"""The keyring file (`EMC_KEYRING`): the agencies' signing keys, JSON or TOML.

Meant to be mounted as a secret (it holds every agency's secret); never put on a Kafka topic
or in Redis. Both formats hold one list `keys` of tables:

    {"keys": [{"key_id": "HNI-20261130-1a2b", "agency": "HNI",
               "secret": "<64 lowercase hex>", "valid_from": "2026-11-30T00:00:00Z",
               "valid_until": null}]}

    [[keys]]
    key_id = "HNI-20261130-1a2b"
    agency = "HNI"
    secret = "<64 lowercase hex>"
    valid_from = "2026-11-30T00:00:00Z"
    # valid_until absent: no end

`valid_until` is exclusive; absent or null means open-ended.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from datetime import datetime, timezone
from pathlib import Path

from streams.domain.instants import us_of, us_to_rfc3339
from streams.domain.signatures import AgencyKey, Keyring, us_of_rfc3339
from streams.errors import KeyringError
from streams.settings import Settings

_FIELDS = {"key_id", "agency", "secret", "valid_from", "valid_until"}


def signing_keyring(settings: Settings) -> Keyring | None:
    """The keyring a producer signs with (--keyring / EMC_KEYRING), or None to send unsigned."""
    return load_keyring(settings.keyring) if settings.keyring else None


def load_keyring(path: Path | str) -> Keyring:
    """Read and check a keyring file; any defect raises KeyringError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"keyring {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise KeyringError(f"keyring {path}: not valid {kind}: {exc}") from None
    try:
        return keyring_of_document(document)
    except KeyringError as exc:
        raise KeyringError(f"keyring {path}: {exc}") from None


def keyring_of_document(document: object) -> Keyring:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyringError("expected an object with a list 'keys'")
    keys = []
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, dict):
            raise KeyringError(f"keys[{index}] is not an object")
        missing = {"key_id", "agency", "secret", "valid_from"} - entry.keys()
        unknown = entry.keys() - _FIELDS
        if missing or unknown:
            raise KeyringError(f"keys[{index}]: missing {sorted(missing)}, unknown {sorted(unknown)}")
        if not all(isinstance(entry[f], str) for f in ("key_id", "agency", "secret", "valid_from")):
            raise KeyringError(f"keys[{index}]: key_id, agency, secret and valid_from must be strings")
        until = entry.get("valid_until")
        if until is not None and not isinstance(until, str):
            raise KeyringError(f"keys[{index}]: valid_until must be a string or null")
        keys.append(AgencyKey(
            key_id=entry["key_id"], agency=entry["agency"], secret=entry["secret"],
            valid_from_us=us_of_rfc3339(entry["valid_from"], f"keys[{index}].valid_from"),
            valid_until_us=None if until is None else us_of_rfc3339(until, f"keys[{index}].valid_until"),
        ))
    return Keyring(keys)


def document_of_keyring(keyring: Keyring) -> dict:
    return {"keys": [
        {"key_id": k.key_id, "agency": k.agency, "secret": k.secret, "valid_from": us_to_rfc3339(k.valid_from_us),
         "valid_until": None if k.valid_until_us is None else us_to_rfc3339(k.valid_until_us)}
        for k in keyring
    ]}


def save_keyring(keyring: Keyring, path: Path | str) -> None:
    """Write the keyring (JSON, or TOML for a .toml path) readable by its owner only, atomically."""
    path = Path(path)
    document = document_of_keyring(keyring)
    if path.suffix == ".toml":
        text = "".join(
            "[[keys]]\n" + "".join(f"{name} = {json.dumps(value)}\n" for name, value in key.items() if value is not None) + "\n"
            for key in document["keys"]
        )
    else:
        text = json.dumps(document, indent=2) + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def new_key(agency: str, valid_from_us: int | None = None, valid_until_us: int | None = None,
            now: datetime | None = None) -> AgencyKey:
    """A fresh key of `agency`: 32 random bytes as hex, an id naming the agency and the day."""
    now = now or datetime.now(timezone.utc)
    now_us = us_of(now.replace(microsecond=0))
    return AgencyKey(
        key_id=f"{agency}-{now:%Y%m%d}-{secrets.token_hex(3)}", agency=agency, secret=secrets.token_hex(32),
        valid_from_us=now_us if valid_from_us is None else valid_from_us, valid_until_us=valid_until_us,
    )


def keyring_for_agencies(agencies: list[str], valid_from_us: int) -> Keyring:
    """One key per agency, from `valid_from_us`: what `emc local` and the tests generate."""
    return Keyring(new_key(code, valid_from_us=valid_from_us) for code in agencies)
