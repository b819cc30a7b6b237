"""Every Redis key name of the project (contract section 5 and its additions), in one place.

Writers (snapshots, rankings, control publisher) and readers (`emc report`, `emc explain`,
`emc agency status`, `emc local`, the tests) all build keys here; nothing else spells one.
All keys start with the configured prefix (`EMC_REDIS_PREFIX`, default `emc:v1:`).
"""

from __future__ import annotations

from streams.domain.bulletin import bulletin_key
from streams.domain.reorg import AS_WAS

KEY_SEPARATOR = ":"  # between the parts of a key, and the last character of the prefix


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (the asyncio clients here do not decode responses)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisKeys:
    """The key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return self.prefix + KEY_SEPARATOR.join(parts)

    # -- snapshots (streams/sinks/redis_snapshots.py) ---------------------------------------
    def agency(self, code: str, period: str) -> str:
        """Hash of an agency's counts in a period."""
        return self._key("agency", code, period)

    def block(self, block: str, period: str) -> str:
        """Hash of a block's (`ministry`, `province`) or the nation's (`national`) counts."""
        return self._key("block", block, period)

    def rank(self, block: str, period: str) -> str:
        """Zset of a block's agencies by full-online rate."""
        return self._key("rank", block, period)

    @property
    def agencies(self) -> str:
        """Hash: agency code -> JSON status document."""
        return self._key("agencies")

    @property
    def instance(self) -> str:
        """A random token set once per Redis data set: it changes when Redis lost its keys."""
        return self._key("instance")

    @property
    def periods_with_figures(self) -> str:
        """Set of the months, quarters and years any worker has written an agency hash for: the
        periods whose catalogue-only hashes (indicator 1 without dossiers) every worker writes."""
        return self._key("periods-with-figures")

    # -- rankings (streams/sinks/redis_rankings.py) ------------------------------------------
    def ranking(self, block: str, period: str, view: str = AS_WAS) -> str:
        """JSON ranking of a block in a view (as-was or restated)."""
        return self._key("ranking" if view == AS_WAS else "ranking-restated", block, period)

    def list(self, kind: str, block: str, period: str) -> str:
        """JSON array of one of the ranking lists (`top10`, `under10`, `silent`, ...)."""
        return self._key("list", kind, block, period)

    @property
    def rankings_dirty(self) -> str:
        """Set of the periods whose rankings must be rebuilt."""
        return self._key("rankings", "dirty")

    @property
    def rankings_rebuilding(self) -> str:
        """Set of the periods taken from `rankings_dirty` and not rebuilt yet."""
        return self._key("rankings", "rebuilding")

    # -- bulletins (streams/reports/bulletins.py) ----------------------------------------------
    def bulletin(self, period: str, version: int) -> str:
        """A published bulletin, under its topic key `{period}:v{N}`."""
        return self._key("bulletin", bulletin_key(period, version))

    @property
    def bulletins(self) -> str:
        """Hash: `{period}:v{N}` -> the bulletin's summary."""
        return self._key("bulletins")

    # -- the dossier endpoint's routing (streams/worker/dossier_api.py) ---------------------
    @property
    def workers(self) -> str:
        """Hash: state partition -> the advertised URL of the worker that owns it."""
        return self._key("workers")

    # -- control state (streams/kafka/control.py, ControlPublisher) --------------------------
    def targets(self, period: str) -> str:
        """Hash: agency code -> target ratio of the period."""
        return self._key("targets", period)

    @property
    def target_periods(self) -> str:
        """Set of the periods that have a `targets` hash."""
        return self._key("target-periods")

    @property
    def maintenance_windows(self) -> str:
        """Hash: agency code -> JSON array of its declared maintenance windows."""
        return self._key("maintenance-windows")
