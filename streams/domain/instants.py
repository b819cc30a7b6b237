"""Instants: microseconds since the epoch, the Asia/Ho_Chi_Minh zone, and RFC 3339 text.

The one place for these units and conversions (pure, integer arithmetic where it matters:
an instant is an `int` of µs since 1970-01-01T00:00:00Z everywhere in the project).
Parsing RFC 3339 input belongs to event validation (`streams.domain.events.rfc3339_to_us`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

US_PER_S = 1_000_000
US_PER_HOUR = 3_600 * US_PER_S
US_PER_DAY = 24 * US_PER_HOUR

# We go through zoneinfo rather than a fixed offset so that any historical instant is placed by
# the tz database, and so that nobody is tempted to use a naive datetime. Vietnam has been
# UTC+07:00 without daylight saving since 1975-06-13; fast paths may use the fixed offset after it.
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VN_OFFSET_US = 7 * US_PER_HOUR
VN_FIXED_OFFSET = timezone(timedelta(hours=7))  # that offset as a tzinfo: the simulator, progress lines
FIXED_OFFSET_SINCE_US = 171_824_400_000_000  # 1975-06-13T00:00:00+07:00

EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def utc_datetime_of_us(epoch_us: int) -> datetime:
    """An instant given in µs since the epoch as an aware UTC datetime (exact: timedelta
    arithmetic on integers)."""
    return EPOCH_UTC + timedelta(microseconds=epoch_us)


def us_of(moment: datetime) -> int:
    """µs since the epoch of an aware datetime (exact); a naive one is a ValueError."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return (moment - EPOCH_UTC) // _ONE_MICROSECOND


def local_date_of_us(epoch_us: int) -> date:
    """The Asia/Ho_Chi_Minh calendar date of an instant given in µs since the epoch."""
    return utc_datetime_of_us(epoch_us).astimezone(VN_TZ).date()


def us_to_rfc3339(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 in UTC: `Z` suffix, and a fraction of six
    digits only when it is not zero."""
    return utc_datetime_of_us(us).isoformat().replace("+00:00", "Z")


def rfc3339_utc(moment: datetime, timespec: str = "seconds") -> str:
    """An aware datetime as RFC 3339 in UTC with a `Z`, to the second (or `timespec`)."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def now_rfc3339(timespec: str = "seconds") -> str:
    """The current instant as RFC 3339 in UTC (`2025-05-01T01:00:00Z`)."""
    return rfc3339_utc(datetime.now(UTC), timespec)
