"""Adapters of the procedure-catalogue topic (`emc.procedure-catalogue.v1`, compacted).

- `send_catalogue`: the CLI's side (`emc catalogue import`), waits for the broker's acks.
- `read_catalogue`: the CLI's reader (`emc catalogue list`, and the import, which merges new
  levels into the history already on the topic): the whole topic, once.
- `CatalogueFeed`: the worker's side, every worker reads the whole topic like the control
  topic (streams/kafka/feed.py) and keeps the latest `Catalogue`.
"""

from __future__ import annotations

import logging
from functools import partial

from streams.domain.catalogue import Catalogue, Procedure, parse_catalogue_message
from streams.domain.registry import Registry
from streams.kafka.compacted import read_latest_records, send_records
from streams.kafka.feed import CompactedTopicFeed
from streams.settings import Settings

log = logging.getLogger(__name__)


def send_catalogue(settings: Settings, messages: list[tuple[bytes, bytes | None]],
                   timeout_s: float = 60.0) -> list[tuple[int, int]]:
    """Produce catalogue records in order and wait for every ack (creating the compacted
    topic first when it is missing)."""
    return send_records(settings, settings.catalogue_topic, messages, what="catalogue record",
                        client_id=f"{settings.app_id}-catalogue-cli", timeout_s=timeout_s)


def read_catalogue(settings: Settings, registry: Registry, timeout_s: float = 30.0) -> Catalogue:
    """The catalogue as the whole topic gives it now (invalid records are skipped, logged)."""
    records = read_latest_records(settings, settings.catalogue_topic, partial(parse_catalogue_message, registry),
                                  what="catalogue", client_id=f"{settings.app_id}-catalogue-cli", timeout_s=timeout_s)
    return Catalogue.of(records.values())


class CatalogueFeed(CompactedTopicFeed[Procedure]):
    """The latest catalogue, kept up to date from the whole catalogue topic."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        super().__init__(settings, settings.catalogue_topic, "catalogue", partial(parse_catalogue_message, registry))
        self.catalogue = Catalogue()

    def _rebuild(self) -> None:
        self.catalogue = Catalogue.of(self._records.values())
        log.info("procedure catalogue: %d procedures", len(self.catalogue))
