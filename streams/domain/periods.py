"""Calendar periods in Asia/Ho_Chi_Minh time (contract section 3); the zone and the
instants are in `streams.domain.instants`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from streams.domain.instants import VN_TZ, local_date_of_us

WINDOWS: tuple[str, ...] = ("day", "month", "quarter", "year")

def day_period(day: date) -> str:
    return day.isoformat()


def month_period(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def quarter_period(day: date) -> str:
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def year_period(day: date) -> str:
    return f"{day.year:04d}"


def periods_of_day(day: date) -> tuple[str, str, str, str]:
    """The day, month, quarter and year periods containing `day`, in WINDOWS order."""
    return (day_period(day), month_period(day), quarter_period(day), year_period(day))


def periods_of_us(epoch_us: int) -> tuple[str, str, str, str]:
    return periods_of_day(local_date_of_us(epoch_us))


def today_local(now: datetime | None = None) -> date:
    """Today's date in Asia/Ho_Chi_Minh; `now` must be timezone-aware when given."""
    moment = now if now is not None else datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return moment.astimezone(VN_TZ).date()


def current_periods(now: datetime | None = None) -> dict[str, str]:
    """window name -> the current calendar period of that window."""
    return dict(zip(WINDOWS, periods_of_day(today_local(now))))


@dataclass(frozen=True, slots=True)
class Period:
    """A parsed period string: `2025-04-30`, `2025-04`, `2025-Q2` or `2025`."""

    window: str
    first_day: date
    last_day: date
    text: str

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


def parse_period(text: str) -> Period:
    """Parse a period string; raises ValueError with a readable message when malformed."""
    try:
        if len(text) == 4 and text.isdigit():
            year = int(text)
            return Period("year", date(year, 1, 1), date(year, 12, 31), text)
        if len(text) == 7 and text[4:6] == "-Q" and text[6] in "1234":
            year, quarter = int(text[:4]), int(text[6])
            first = date(year, 3 * quarter - 2, 1)
            return Period("quarter", first, _month_end(year, 3 * quarter), text)
        if len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:7])
            return Period("month", date(year, month, 1), _month_end(year, month), text)
        if len(text) == 10:
            day = date.fromisoformat(text)
            if day.isoformat() == text:
                return Period("day", day, day, text)
    except ValueError:
        pass
    raise ValueError(f"not a period: {text!r} (expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD)")


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)
