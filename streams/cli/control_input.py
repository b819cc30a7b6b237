"""Input checks shared by `emc targets` and `emc agency`: a bad agency, period, ratio or window
stops with one line and exit 2 before anything is sent to the control topic."""

from __future__ import annotations

from collections.abc import Callable

from streams.domain.events import rfc3339_to_us
from streams.errors import ConfigError, InvalidControlRecord, InvalidEvent

FORMATS = ("json", "table")


def parse_ratio(text: str) -> float:
    """`0.85` or `85%` -> 0.85; text that is not a number is a ConfigError (the range is
    checked with the record)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"ratio must be a number between 0 and 1 (0.85) or a percentage (85%), got {text!r}") from None
    return value


def checked(build: Callable[[], object]) -> object:
    try:
        return build()
    except InvalidControlRecord as exc:
        raise ConfigError(str(exc)) from None


def instant(text: str, flag: str) -> int:
    try:
        return rfc3339_to_us(text)
    except InvalidEvent:
        raise ConfigError(f"{flag}: {text!r} is not an RFC 3339 time with an offset, e.g. 2024-12-02T00:00:00+07:00") from None
