"""Adapters of the procedure-catalogue topic (`emc.procedure-catalogue.v1`, compacted).

- `send_catalogue`: the CLI's side (`emc catalogue import`), waits for the broker's acks.
- `read_catalogue`: the CLI's reader (`emc catalogue list`, and the import, which merges new
  levels into the history already on the topic): the whole topic, once.
- `CatalogueFeed`: the worker's side, every worker reads the whole topic like the control
  topic (streams/kafka/feed.py) and keeps the latest `Catalogue`.
"""

from __future__ import annotations

import logging

from streams.domain.catalogue import Catalogue, Procedure, apply_catalogue_message, parse_catalogue_message
from streams.domain.registry import Registry
from streams.errors import InvalidCatalogueRecord
from streams.kafka.compacted import produce_acked, read_whole_topic
from streams.kafka.feed import CompactedTopicFeed
from streams.settings import Settings

log = logging.getLogger(__name__)


def send_catalogue(settings: Settings, messages: list[tuple[bytes, bytes | None]],
                   timeout_s: float = 60.0) -> list[tuple[int, int]]:
    """Produce catalogue records in order and wait for every ack. Creates the compacted topic
    first when it is missing, so that a broker's auto-creation never makes it a deleting one."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={settings.catalogue_topic})
    return produce_acked(settings, settings.catalogue_topic, messages, what="catalogue record",
                         client_id=f"{settings.app_id}-catalogue-cli", timeout_s=timeout_s)


def read_catalogue(settings: Settings, registry: Registry, timeout_s: float = 30.0) -> Catalogue:
    """The catalogue as the whole topic gives it now (invalid records are skipped, logged)."""
    from streams.kafka.topics import ensure_topics

    ensure_topics(settings, timeout_s=timeout_s, names={settings.catalogue_topic})
    records: dict[str, Procedure] = {}
    for partition, offset, key, value in read_whole_topic(settings, settings.catalogue_topic,
                                                          client_id=f"{settings.app_id}-catalogue-cli",
                                                          timeout_s=timeout_s):
        _fold(registry, records, key, value, partition, offset)
    return Catalogue.of(records.values())


def _fold(registry: Registry, records: dict[str, Procedure], key: bytes | None, value: bytes | None,
          partition: int, offset: int) -> bool:
    try:
        text_key, procedure = parse_catalogue_message(registry, key, value)
    except InvalidCatalogueRecord as exc:
        log.warning("skipping an invalid catalogue record at partition %d offset %d: %s", partition, offset, exc,
                    extra={"event": "invalid_catalogue_record", "partition": partition, "offset": offset})
        return False
    apply_catalogue_message(records, text_key, procedure)
    return True


class CatalogueFeed(CompactedTopicFeed):
    """The latest catalogue, kept up to date from the whole catalogue topic."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        super().__init__(settings, settings.catalogue_topic, "catalogue")
        self._registry = registry
        self._records: dict[str, Procedure] = {}
        self.catalogue = Catalogue()

    def _fold_message(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> bool:
        return _fold(self._registry, self._records, key, value, partition, offset)

    def _rebuild(self) -> None:
        self.catalogue = Catalogue.of(self._records.values())
        log.info("procedure catalogue: %d procedures", len(self.catalogue))

    def _record_count(self) -> int:
        return len(self._records)
