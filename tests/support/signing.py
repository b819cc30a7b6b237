"""Signed events for tests: settings of a worker that enforces signatures, and the keyring its
producers sign with (`EventProducer(settings, signing_keyring(settings))`)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from streams.domain.registry import Registry
from streams.security.keyring_file import keyring_for_agencies, save_keyring
from streams.settings import Settings


def with_signatures(settings: Settings, directory: Path) -> Settings:
    """`settings` with EMC_AUTH=enforce and a fresh keyring: one key per agency of the registry."""
    path = directory / "keyring.json"
    valid_from_us = (int(time.time()) - 3600) * 1_000_000
    save_keyring(keyring_for_agencies([a.code for a in Registry.load()], valid_from_us), path)
    return replace(settings, auth="enforce", keyring=str(path))
