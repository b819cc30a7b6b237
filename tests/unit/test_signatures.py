"""Event signatures: the domain rules (property tests), the keyring file, and the ingest
stage's check in audit and enforce modes (validate_record, no broker needed)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.registry import Registry
from streams.domain.signatures import (
    BAD_SIGNATURE,
    KEY_ID_HEADER,
    KEY_NOT_VALID,
    MISSING_SIGNATURE,
    SIGNATURE_HEADER,
    UNKNOWN_KEY,
    WRONG_AGENCY,
    AgencyKey,
    Keyring,
    Signer,
    check_agency,
    signature_headers,
)
from streams.errors import KeyringError, Unauthenticated
from streams.security.keyring_file import load_keyring, new_key, save_keyring
from streams.worker.authentication import EventAuthenticator
from streams.worker.ingest import DeadLetter, validate_record

DAY_US = 86_400 * 1_000_000
T0 = 1_780_000_000 * 1_000_000  # 2026-05-28


def key(key_id: str, agency: str, secret_byte: str = "a", valid_from: int = T0, valid_until: int | None = None) -> AgencyKey:
    return AgencyKey(key_id, agency, secret_byte * 64, valid_from, valid_until)


def event_bytes(agency: str, event_id: str = "e1") -> bytes:
    return orjson.dumps({"schema": "emc.dossier-event.v1", "event_id": event_id, "agency_code": agency,
                         "dossier_id": "d1", "type": "received", "channel": "online",
                         "procedure_code": "1.001", "occurred_at": "2026-05-01T08:00:00+07:00"})


def test_the_signature_is_the_documented_hmac() -> None:
    # The README's definition, computed independently: hex HMAC-SHA256, key = the secret's ASCII.
    k = key("BCA-1", "BCA", "b")
    value = event_bytes("BCA")
    headers = dict(signature_headers(k, value))
    assert headers[KEY_ID_HEADER] == b"BCA-1"
    assert headers[SIGNATURE_HEADER] == hmac.new(b"b" * 64, value, hashlib.sha256).hexdigest().encode()


@given(value=st.binary(max_size=2000), at=st.integers(T0, T0 + 100 * DAY_US))
def test_a_signed_value_verifies_with_its_key(value: bytes, at: int) -> None:
    k = key("BCA-1", "BCA")
    assert Keyring([k]).verify(dict(signature_headers(k, value)), value, at) == k


@given(value=st.binary(min_size=1, max_size=2000), data=st.data())
def test_any_changed_byte_breaks_the_signature(value: bytes, data: st.DataObject) -> None:
    k = key("BCA-1", "BCA")
    headers = dict(signature_headers(k, value))
    i = data.draw(st.integers(0, len(value) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = value[:i] + bytes([value[i] ^ flip]) + value[i + 1:]
    with pytest.raises(Unauthenticated) as failure:
        Keyring([k]).verify(headers, tampered, T0)
    assert failure.value.reason == BAD_SIGNATURE


@given(at=st.integers(T0 - 10 * DAY_US, T0 + 10 * DAY_US))
def test_a_key_counts_only_inside_its_window(at: int) -> None:
    k = key("BCA-1", "BCA", valid_from=T0 - DAY_US, valid_until=T0 + DAY_US)
    value = b"{}"
    ring = Keyring([k])
    if T0 - DAY_US <= at < T0 + DAY_US:
        assert ring.verify(dict(signature_headers(k, value)), value, at) == k
    else:
        with pytest.raises(Unauthenticated) as failure:
            ring.verify(dict(signature_headers(k, value)), value, at)
        assert failure.value.reason == KEY_NOT_VALID


def test_missing_headers_and_unknown_keys_are_refused() -> None:
    k = key("BCA-1", "BCA")
    ring = Keyring([k])
    signed = dict(signature_headers(k, b"x"))
    for headers in ({}, {KEY_ID_HEADER: b"BCA-1"}, {SIGNATURE_HEADER: signed[SIGNATURE_HEADER]}):
        with pytest.raises(Unauthenticated) as failure:
            ring.verify(headers, b"x", T0)
        assert failure.value.reason == MISSING_SIGNATURE
    stranger = key("BCA-2", "BCA", "c")
    with pytest.raises(Unauthenticated) as failure:
        ring.verify(dict(signature_headers(stranger, b"x")), b"x", T0)
    assert failure.value.reason == UNKNOWN_KEY


def test_a_key_proves_only_its_own_agency() -> None:
    check_agency(key("BCA-1", "BCA"), "BCA")
    with pytest.raises(Unauthenticated) as failure:
        check_agency(key("BCA-1", "BCA"), "BQP")
    assert failure.value.reason == WRONG_AGENCY
    assert "BCA-1 belongs to BCA" in failure.value.detail


def test_rotation_with_overlapping_keys() -> None:
    old = key("HNI-old", "HNI", "a", valid_from=T0, valid_until=T0 + 30 * DAY_US)
    new = key("HNI-new", "HNI", "b", valid_from=T0 + 20 * DAY_US)
    ring = Keyring([old, new])
    value = event_bytes("HNI")
    during_overlap = T0 + 25 * DAY_US
    # Both keys verify during the overlap, so producers switch over at their own pace ...
    assert ring.verify(dict(signature_headers(old, value)), value, during_overlap) == old
    assert ring.verify(dict(signature_headers(new, value)), value, during_overlap) == new
    # ... producers sign with the newest valid key, and the old key stops at its end.
    assert ring.signing_key("HNI", during_overlap) == new
    assert ring.signing_key("HNI", T0 + DAY_US) == old
    with pytest.raises(Unauthenticated):
        ring.verify(dict(signature_headers(old, value)), value, T0 + 30 * DAY_US)


def test_the_signer_signs_by_message_key_and_counts_what_it_cannot_sign() -> None:
    k = key("HNI-1", "HNI")
    signer = Signer(Keyring([k]))
    value = event_bytes("HNI")
    assert signer.headers(b"HNI", value, T0) == signature_headers(k, value)
    assert signer.headers(b"BCA", value, T0) is None
    assert signer.headers(None, b"not json", T0) is None
    assert signer.unsigned == 2


def test_secrets_never_show_in_a_repr() -> None:
    k = new_key("BCA")
    assert k.secret not in repr(k) and k.secret not in repr(Keyring([k]).get(k.key_id))


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_keyring_files_round_trip(tmp_path: Path, suffix: str) -> None:
    ring = Keyring([key("BCA-1", "BCA"), key("HNI-1", "HNI", "b", valid_until=T0 + DAY_US)])
    path = tmp_path / f"keyring{suffix}"
    save_keyring(ring, path)
    assert path.stat().st_mode & 0o077 == 0  # a secret: readable by its owner only
    loaded = load_keyring(path)
    assert {(k.key_id, k.agency, k.secret, k.valid_from_us, k.valid_until_us) for k in loaded} == {
        (k.key_id, k.agency, k.secret, k.valid_from_us, k.valid_until_us) for k in ring
    }


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON"),
    ('{"keys": {}}', "a list 'keys'"),
    ('{"keys": [{"key_id": "a", "agency": "BCA", "secret": "short", "valid_from": "2026-01-01T00:00:00Z"}]}',
     "64 lowercase hex"),
    ('{"keys": [{"key_id": "a", "agency": "BCA", "secret": "' + "a" * 64 + '", "valid_from": "2026-01-01"}]}',
     "valid_from"),
    ('{"keys": [{"key_id": "a", "agency": "BCA", "secret": "' + "a" * 64 + '", "valid_from": "2026-01-01T00:00:00Z",'
     ' "valid_until": "2025-01-01T00:00:00Z"}]}', "not after valid_from"),
    ('{"keys": [{"key_id": "a", "agency": "BCA", "secret": "' + "a" * 64 + '", "valid_from": "2026-01-01T00:00:00Z"},'
     ' {"key_id": "a", "agency": "HNI", "secret": "' + "b" * 64 + '", "valid_from": "2026-01-01T00:00:00Z"}]}',
     "appears twice"),
])
def test_a_malformed_keyring_is_refused_with_its_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(text)
    with pytest.raises(KeyringError, match=message):
        load_keyring(path)


def test_a_malformed_keyring_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text('{"keys": [{"key_id": "a"}]}')
    env = {"PATH": "/usr/bin:/bin", "EMC_AUTH": "enforce", "EMC_KEYRING": str(path),
           # a broker nobody listens on: the keyring must stop the start before any connection
           "EMC_BROKER": "kafka://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"emc: error: keyring {path}: keys[0]: missing ['agency', 'secret', 'valid_from'], unknown []"
    ]


# -- the ingest stage's check ----------------------------------------------------------------

REGISTRY = Registry.load()
BCA = key("BCA-1", "BCA", "a")
BQP = key("BQP-1", "BQP", "b")
EXPIRED = key("BCA-0", "BCA", "c", valid_from=T0 - 10 * DAY_US, valid_until=T0 - DAY_US)
RING = Keyring([BCA, BQP, EXPIRED])
STRANGER = key("XYZ-9", "BCA", "d")


def _cases() -> dict[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    good = event_bytes("BCA", "ok")
    naming_bqp = event_bytes("BQP", "forged")
    tampered = event_bytes("BCA", "tampered")
    expired = event_bytes("BCA", "expired")
    unknown = event_bytes("BCA", "unknown")
    return {
        "wrong_agency": (b"BQP", naming_bqp, signature_headers(BCA, naming_bqp)),
        "unknown_key": (b"BCA", unknown, signature_headers(STRANGER, unknown)),
        "key_not_valid": (b"BCA", expired, signature_headers(EXPIRED, expired)),
        "bad_signature": (b"BCA", tampered.replace(b"\"d1\"", b"\"d9\""), signature_headers(BCA, tampered)),
        "missing_signature": (b"BCA", good, []),
    }


def _validate(mode: str, key_: bytes, value: bytes, headers: list, failures: list) -> object:
    authenticator = EventAuthenticator(mode, RING, REGISTRY, lambda agency, reason: failures.append((agency, reason)))
    return validate_record(REGISTRY, key_, value, "in", 0, 7, authenticator, headers, T0 // 1000)


@pytest.mark.parametrize("mode", ["audit", "enforce"])
def test_a_signed_event_is_accepted(mode: str) -> None:
    failures: list = []
    value = event_bytes("BCA")
    outcome = _validate(mode, b"BCA", value, signature_headers(BCA, value), failures)
    assert not isinstance(outcome, DeadLetter) and outcome.agency_code == "BCA"
    assert failures == []


@pytest.mark.parametrize("reason", list(_cases()))
def test_enforce_dead_letters_each_unauthenticated_event(reason: str) -> None:
    failures: list = []
    key_, value, headers = _cases()[reason]
    outcome = _validate("enforce", key_, value, headers, failures)
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason == "unauthenticated" and outcome.detail.startswith(f"{reason}: ")
    assert outcome.value == value and (outcome.partition, outcome.offset) == (0, 7)
    assert failures == [(key_.decode(), reason)]


@pytest.mark.parametrize("reason", list(_cases()))
def test_audit_lets_each_unauthenticated_event_through_and_meters_it(reason: str) -> None:
    failures: list = []
    key_, value, headers = _cases()[reason]
    outcome = _validate("audit", key_, value, headers, failures)
    assert not isinstance(outcome, DeadLetter)
    assert failures == [(key_.decode(), reason)]


def test_the_metric_label_of_an_agency_outside_the_registry_is_unknown() -> None:
    failures: list = []
    outcome = _validate("enforce", b"NOT-AN-AGENCY" * 10, b"junk", [], failures)
    assert isinstance(outcome, DeadLetter) and failures == [("unknown", MISSING_SIGNATURE)]


def test_off_checks_nothing() -> None:
    outcome = validate_record(REGISTRY, b"BCA", event_bytes("BCA"), "in", 0, 7)
    assert not isinstance(outcome, DeadLetter)


def test_a_new_key_is_valid_from_now_for_its_agency() -> None:
    k = new_key("HNI")
    assert k.agency == "HNI" and k.key_id.startswith("HNI-") and len(k.secret) == 64 and k.valid_until_us is None
    with pytest.raises(KeyringError):
        AgencyKey("bad id!", "HNI", "a" * 64)


def test_the_contract_test_vector() -> None:
    # docs/contract.md section 1.3 gives this vector to implementers in other languages.
    from streams.domain.signatures import signature_of

    text = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    vector = signature_of("a" * 64, b"{}")
    assert vector == "8fa0b357cb2e38a5b36312a9902e7ff0bd8b3795f6fd0c6403980d4dd2779fa8" and vector in text


def test_emc_keys_new_list_retire_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from streams.cli.main import main

    path = tmp_path / "keyring.json"
    assert main(["keys", "new", "T01", "--keyring", str(path), "--valid-from", "2026-01-01T00:00:00+07:00"]) == 0
    printed = capsys.readouterr().out
    (key,) = load_keyring(path)
    assert key.key_id in printed and key.secret in printed  # what the agency's producer needs
    assert main(["keys", "new", "--all", "--keyring", str(path)]) == 0
    ring = load_keyring(path)
    assert len(ring) == len(REGISTRY) and "T01" not in {k.agency for k in ring if k.key_id != key.key_id}
    capsys.readouterr()
    assert main(["keys", "list", "--keyring", str(path), "--agency", "T01"]) == 0
    listing = capsys.readouterr().out
    assert key.key_id in listing and key.secret not in listing
    assert main(["keys", "retire", key.key_id, "--at", "2026-06-01T00:00:00Z", "--keyring", str(path)]) == 0
    assert load_keyring(path).get(key.key_id).valid_until_us == 1_780_272_000_000_000
    assert main(["keys", "retire", key.key_id, "--remove", "--keyring", str(path)]) == 0
    assert load_keyring(path).get(key.key_id) is None
    assert main(["keys", "new", "NOT-AN-AGENCY", "--keyring", str(path)]) == 2
