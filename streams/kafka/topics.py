"""The project's topic names and their creation, with explicit configs (Tansu reports only those).

The input, dead-letter, batch and control topics are settings (`streams/settings.py`); the
state tables' changelog topics are named here, after Faust's rule `{app_id}-{table}-changelog`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import ExternalServiceError
from streams.kafka.compacted import MAX_RECORD_BYTES
from streams.kafka.security import kafka_python_security
from streams.settings import Settings

log = logging.getLogger(__name__)

# The worker's Faust tables, in the order the worker creates them; each has a changelog topic.
EVENT_INDEX_TABLE, DOSSIERS_TABLE, COUNTERS_TABLE, AGENCIES_TABLE, PROCEDURES_TABLE = STATE_TABLES = (
    "event-index", "dossiers", "counters", "agencies", "procedures")


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic Faust gives a table of the app `app_id`."""
    return f"{app_id}-{table}-changelog"


_KEEP_FOREVER = {"retention.ms": "-1", "cleanup.policy": "delete"}
_COMPACTED = {"retention.ms": "-1", "cleanup.policy": "compact"}


def ensure_topics(settings: Settings, timeout_s: float = 60.0, names: Collection[str] | None = None) -> None:
    """Create the input, dead-letter, batch, control and catalogue topics when missing.

    The batch topic must have exactly `settings.partitions` partitions: the state tables are
    co-partitioned with it. The input topic gets the same count when we create it; an
    existing input topic may have any count.
    """
    wanted = [
        NewTopic(settings.input_topic, settings.partitions, settings.replication_factor, topic_configs=_KEEP_FOREVER),
        NewTopic(settings.dead_letter_topic, settings.partitions, settings.replication_factor, topic_configs=_KEEP_FOREVER),
        NewTopic(settings.batch_topic, settings.partitions, settings.replication_factor,
                 topic_configs={"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}),
        # Compacted: the latest record of each target / maintenance key is kept forever; one
        # partition, as every worker reads all of it.
        NewTopic(settings.control_topic, 1, settings.replication_factor, topic_configs=_COMPACTED),
        # Compacted too: every published bulletin version has its own key, so all are kept.
        NewTopic(settings.bulletin_topic, 1, settings.replication_factor,
                 topic_configs={**_COMPACTED, "max.message.bytes": str(MAX_RECORD_BYTES)}),
        # The same for the procedure catalogue: one record per procedure, its history inside.
        NewTopic(settings.catalogue_topic, 1, settings.replication_factor, topic_configs=_COMPACTED),
    ]
    if names is not None:  # only these (e.g. the CLI creating the control topic)
        wanted = [topic for topic in wanted if topic.name in names]
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.app_id}-admin",
                                     **kafka_python_security(settings))
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise ExternalServiceError(f"broker {settings.broker} unreachable: {exc}") from exc
            log.warning("broker not reachable, retrying", extra={"broker": settings.broker, "retry_in_s": delay})
            time.sleep(delay)
            delay = min(delay * 2, 10)
    try:
        existing = set(admin.list_topics())
        for topic in wanted:
            if topic.name in existing:
                continue
            try:
                admin.create_topics([topic])
                log.info("created topic %s", topic.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it in the meantime
    finally:
        admin.close()
