"""Bad input as producers get it wrong: every kind of message the worker must dead-letter
(used by the poison, chaos tests and benchmarks/chaos.py)."""

from __future__ import annotations

import random

import orjson

BAD_HEADERS = [("x-trace", b"\xff\xfe\x00bad"), ("\u00e9", b"\xc3\x28")]
TWO_MIB = 2 * 1024 * 1024


def poison(n: int, agency: str, rng: random.Random) -> tuple[bytes | None, bytes | None, list]:
    """The n-th bad message: (key, value, headers), 13 kinds in turn."""
    good = {"schema": "emc.dossier-event.v1", "event_id": f"p{n}", "agency_code": agency, "dossier_id": f"pd{n}",
            "type": "received", "channel": "online", "procedure_code": "1.1", "occurred_at": "2025-01-05T03:00:00Z"}
    kind = n % 13
    headers = BAD_HEADERS if rng.random() < 0.3 else []
    key = agency.encode()
    if kind == 0:
        return key, b"", headers                                        # empty value
    if kind == 1:
        return key, None, headers                                       # null value (a tombstone)
    if kind == 2:
        return None, b"{not json", headers                              # null key, not JSON
    if kind == 3:
        return key, b"\xff\xfe" + orjson.dumps(good)[2:], headers       # not UTF-8
    if kind == 4:
        return key, b"[1, 2, 3]", headers                               # not an object
    if kind == 5:
        return key, orjson.dumps({**good, "type": "teleported"}), headers
    if kind == 6:
        return key, orjson.dumps({k: v for k, v in good.items() if k != "event_id"}), headers
    if kind == 7:
        return b"NOPE", orjson.dumps({**good, "agency_code": "NOPE"}), headers  # unknown agency
    if kind == 8:
        return b"OTHER", orjson.dumps(good), headers                    # key and agency_code disagree
    if kind == 9:
        return key, orjson.dumps({**good, "occurred_at": "yesterday"}), headers
    if kind == 10:
        return key, orjson.dumps({**good, "channel": "pigeon"}), headers
    if kind == 11:
        return key, orjson.dumps({**good, "note": "x" * (70 * 1024)}), headers  # over 64 KiB
    return key, b"\x00" * 16, headers
