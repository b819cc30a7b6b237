"""Value types for argparse flags: each turns a bad value into one readable error line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date


def bounded(kind: type, *, minimum: float, maximum: float | None = None, strict: bool = False) -> Callable[[str], float]:
    """A parser of `kind` (int or float) values in [minimum, maximum] ((minimum, ...] if strict)."""
    noun = "an integer" if kind is int else "a number"
    if maximum is not None:
        expected = f"{noun} between {minimum:g} and {maximum:g}"
    else:
        expected = f"{noun} {'>' if strict else '≥'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        too_low = value <= minimum if strict else value < minimum
        if too_low or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


share = bounded(float, minimum=0.0, maximum=1.0)
positive_number = bounded(float, minimum=0.0, strict=True)
positive_integer = bounded(int, minimum=1)
count = bounded(int, minimum=0)


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
