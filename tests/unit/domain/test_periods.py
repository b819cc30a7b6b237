"""Calendar periods in Asia/Ho_Chi_Minh at their edges."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.dossier import periods_at
from streams.domain.instants import VN_TZ
from streams.domain.periods import current_periods, parse_period, periods_of_day


def _us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2025-04-30T16:59:59+00:00", ("2025-04-30", "2025-04", "2025-Q2", "2025")),
        ("2025-04-30T17:00:00+00:00", ("2025-05-01", "2025-05", "2025-Q2", "2025")),
        ("2025-03-31T17:00:00+00:00", ("2025-04-01", "2025-04", "2025-Q2", "2025")),
        ("2025-03-31T16:59:59.999999+00:00", ("2025-03-31", "2025-03", "2025-Q1", "2025")),
        ("2024-12-31T17:00:00+00:00", ("2025-01-01", "2025-01", "2025-Q1", "2025")),
        ("2024-12-31T16:59:59+00:00", ("2024-12-31", "2024-12", "2024-Q4", "2024")),
        ("2024-02-28T17:00:00+00:00", ("2024-02-29", "2024-02", "2024-Q1", "2024")),
        ("2024-02-29T17:00:00+00:00", ("2024-03-01", "2024-03", "2024-Q1", "2024")),
        ("2025-06-30T17:00:00+00:00", ("2025-07-01", "2025-07", "2025-Q3", "2025")),
        ("2025-09-30T23:00:00+07:00", ("2025-09-30", "2025-09", "2025-Q3", "2025")),
        ("1970-01-01T00:00:00+00:00", ("1970-01-01", "1970-01", "1970-Q1", "1970")),
    ],
)
def test_edges(instant: str, expected: tuple[str, ...]) -> None:
    assert periods_at(_us(instant)) == expected


@given(st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)))
def test_fast_path_agrees_with_zoneinfo(moment: datetime) -> None:
    epoch_us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    assert periods_at(epoch_us) == periods_of_day(moment.astimezone(VN_TZ).date())


@pytest.mark.parametrize(
    ("text", "window", "first", "last"),
    [
        ("2025", "year", date(2025, 1, 1), date(2025, 12, 31)),
        ("2025-Q1", "quarter", date(2025, 1, 1), date(2025, 3, 31)),
        ("2024-Q1", "quarter", date(2024, 1, 1), date(2024, 3, 31)),
        ("2025-02", "month", date(2025, 2, 1), date(2025, 2, 28)),
        ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29)),
        ("2025-04-30", "day", date(2025, 4, 30), date(2025, 4, 30)),
    ],
)
def test_parse_period(text: str, window: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.window, period.first_day, period.last_day) == (window, first, last)


@pytest.mark.parametrize("text", ["2025-13", "2025-Q5", "25", "2025-02-30", "2025-4", "Q1-2025", ""])
def test_parse_period_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a period"):
        parse_period(text)


def test_current_periods_use_local_time_and_refuse_naive_datetimes() -> None:
    assert current_periods(datetime(2025, 12, 31, 17, 0, tzinfo=timezone.utc)) == {
        "day": "2026-01-01", "month": "2026-01", "quarter": "2026-Q1", "year": "2026",
    }
    with pytest.raises(ValueError):
        current_periods(datetime(2025, 1, 1))
