"""What `emc report` and `emc explain` share: the period argument, and reading Redis once.

Heavy modules (redis) are imported when a command runs, not when the parser is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from streams.errors import ConfigError, ExternalServiceError
from streams.settings import Settings

T = TypeVar("T")

PERIOD_HELP = "YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD"


def period_text(text: str) -> str:
    """The canonical text of a period argument; a bad one is a ConfigError."""
    from streams.domain.periods import parse_period

    try:
        return parse_period(text).text
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def with_redis(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    """`work(client)` with a fresh client; a lost Redis is one readable ExternalServiceError."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from streams.sinks.redis_snapshots import connect

    client = connect(settings)
    try:
        return await work(client)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ExternalServiceError(f"redis {settings.redis_url} unreachable: {exc}") from exc
    finally:
        await client.aclose()
