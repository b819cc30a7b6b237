"""`emc keys new AGENCY` and `emc keys list`: the keyring of agency signing keys (EMC_KEYRING)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from streams.cli.flags import add_settings, settings_from, subcommands
from streams.domain.instants import us_to_rfc3339
from streams.domain.registry import Registry
from streams.domain.signatures import KEY_ID_HEADER, SIGNATURE_HEADER, Keyring, us_of_rfc3339
from streams.errors import ConfigError
from streams.security.keyring_file import load_keyring, new_key, save_keyring


def register(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="agency signing keys (the keyring, EMC_KEYRING)")
    keys.set_defaults(run=run)
    keys_commands = subcommands(keys, "keys_command")
    new = keys_commands.add_parser("new", help="add a key of AGENCY to the keyring (created if absent) and print "
                                              "what its producer needs")
    new.add_argument("agency", nargs="?", help="agency code (emc registry list)")
    new.add_argument("--all", action="store_true", help="a key for every agency of the registry without a valid one now "
                     "(idempotent; secrets stay in the keyring, not printed: how docker-compose makes its keyring)")
    new.add_argument("--valid-from", default=None, metavar="T", help="RFC 3339 (default: now)")
    new.add_argument("--valid-until", default=None, metavar="T", help="RFC 3339, exclusive (default: no end)")
    add_settings(new, ["keyring"])
    retire = keys_commands.add_parser("retire", help="end a key's validity (rotation), or --remove it (compromise)")
    retire.add_argument("key_id")
    retire.add_argument("--at", default=None, metavar="T", help="RFC 3339 end of validity, exclusive (default: now)")
    retire.add_argument("--remove", action="store_true", help="delete the key: events signed with it are refused "
                        "whatever their timestamp")
    add_settings(retire, ["keyring"])
    listing = keys_commands.add_parser("list", help="key ids, agencies and validity (never the secrets)")
    listing.add_argument("--agency", default=None)
    add_settings(listing, ["keyring"])


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.keyring:
        raise ConfigError("no keyring: give --keyring FILE or EMC_KEYRING")
    path = Path(settings.keyring)
    if args.keys_command == "new":
        return _new(args, path)
    keyring = load_keyring(path)
    if args.keys_command == "retire":
        return _retire(args, keyring, path)
    print(f"{'key id':<28} {'agency':<8} {'valid from':<22} valid until")
    for key in sorted(keyring, key=lambda k: (k.agency, k.valid_from_us, k.key_id)):
        if args.agency is None or key.agency == args.agency:
            until = "-" if key.valid_until_us is None else us_to_rfc3339(key.valid_until_us)
            print(f"{key.key_id:<28} {key.agency:<8} {us_to_rfc3339(key.valid_from_us):<22} {until}")
    return 0


def _retire(args: argparse.Namespace, keyring: Keyring, path: Path) -> int:
    key = keyring.get(args.key_id)
    if key is None:
        raise ConfigError(f"no key {args.key_id!r} in {path} (emc keys list)")
    others = [k for k in keyring if k.key_id != key.key_id]
    if args.remove:
        save_keyring(Keyring(others), path)
        print(f"removed key {key.key_id} of {key.agency} from {path}; restart the workers to apply it")
        return 0
    until_us = time.time_ns() // 1000 if args.at is None else us_of_rfc3339(args.at, "--at")
    if until_us <= key.valid_from_us:
        raise ConfigError(f"--at must be after the key's valid_from {us_to_rfc3339(key.valid_from_us)}")
    retired = replace(key, valid_until_us=until_us)
    save_keyring(Keyring([*others, retired]), path)
    print(f"key {key.key_id} of {key.agency} now valid {retired.validity_text()}; restart the workers to apply it")
    return 0


def _new(args: argparse.Namespace, path: Path) -> int:
    registry = Registry.load()
    keyring = load_keyring(path) if path.exists() else Keyring([])
    if args.all == (args.agency is not None):
        raise ConfigError("give one AGENCY or --all")
    if args.all:
        now_us = time.time_ns() // 1000
        missing = [a.code for a in registry if keyring.signing_key(a.code, now_us) is None]
        for code in missing:
            keyring = keyring.with_key(new_key(code))
        save_keyring(keyring, path)
        print(f"{path}: {len(missing)} keys added, {len(keyring)} in all (emc keys list shows them; the secrets are in the file)")
        return 0
    if args.agency not in registry:
        raise ConfigError(f"{args.agency!r} is not an agency code of the registry (emc registry list)")
    key = new_key(
        args.agency,
        valid_from_us=None if args.valid_from is None else us_of_rfc3339(args.valid_from, "--valid-from"),
        valid_until_us=None if args.valid_until is None else us_of_rfc3339(args.valid_until, "--valid-until"),
    )
    save_keyring(keyring.with_key(key), path)
    until = "no end" if key.valid_until_us is None else us_to_rfc3339(key.valid_until_us)
    print(f"added key {key.key_id} of {key.agency} to {path}, valid from {us_to_rfc3339(key.valid_from_us)} until {until}")
    print("Give the agency's producer, over a secure channel (it signs every event with it):")
    print(f"  key id  {key.key_id}")
    print(f"  secret  {key.secret}")
    print(f"  headers {KEY_ID_HEADER}: the key id; {SIGNATURE_HEADER}: lowercase hex HMAC-SHA256 of the message value,")
    print("          keyed with the secret's 64 ASCII characters (README, 'Signed events')")
    return 0
