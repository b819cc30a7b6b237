"""The 2025 profile's April through the real pipeline (Tansu broker, `emc worker`, redis-server),
as `emc simulate --profile 2025` and `emc local --profile 2025` send it: the simulated procedure
catalogue on its topic, then the events. Redis ends up with exactly what the batch computation
says, and that is issue 14's table of April 2025: the three toàn trình rates, national and per
block, each within one point of the published figure, and the 1.6 million dossiers received
through the national portal, scaled down."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.domain.catalogue import Catalogue
from streams.domain.registry import Registry
from streams.domain.snapshot import counts_from_hash
from streams.kafka.producer import EventProducer
from streams.simulation.profile import ProfileConfig, ProfileSimulation
from streams.simulation.traffic import declare_catalogue
from streams.sinks.keys import RedisKeys
from tests.support.oracle import accepted_events, batch_counts, nonzero
from tests.support.published_figures import (
    PUBLISHED_2025_04,
    PUBLISHED_2025_04_NATIONAL_PORTAL,
    PUBLISHED_2025_04_PROCEDURES,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REGISTRY = Registry.load()
# April 2025 as `emc local --profile 2025` runs it, small (~15k messages): few events per
# dossier, a heartbeat a month; 20 resolved dossiers at least per unit.
CONFIG = ProfileConfig(profile="2025", period="2025-04", scale=0.0001, seed=2025, min_resolved=20, lean=True,
                       heartbeat_every=timedelta(days=30), duplicate_share=0.02, correction_share=0.02,
                       void_share=0.01, late_share=0.02, bad_share=0.002)
RATES = {"full_online_procedures_rate": PUBLISHED_2025_04_PROCEDURES["full_online_procedures"],
         "full_online_procedures_used_rate": PUBLISHED_2025_04_PROCEDURES["full_online_procedures_used"],
         "full_online_rate": PUBLISHED_2025_04}


def test_2025_profile_through_the_pipeline_gives_the_april_2025_table(settings, start_worker, redis_client) -> None:
    simulation = ProfileSimulation(CONFIG, REGISTRY)
    messages = list(simulation.messages())
    valid = accepted_events(messages, (agency.code for agency in REGISTRY))
    catalogue = Catalogue.of(simulation.catalogue())
    expected = {key: row for key, row in batch_counts(valid, catalogue).items() if key[1] == "2025-04"}
    assert len(messages) < 25_000 and len(expected) == len(simulation.plan.units)

    declare_catalogue(settings, simulation)  # what `emc simulate --broker` and `emc local` do
    worker = start_worker()
    with EventProducer(settings) as producer:
        for message in messages:
            producer.send(message.key, message.value)
        producer.flush()

    keys = RedisKeys(settings.redis_prefix)

    def drained() -> bool:
        pipe = redis_client.pipeline(transaction=False)
        for agency, period in expected:
            pipe.hgetall(keys.agency(agency, period))
        return [nonzero(counts_from_hash(fields)) for fields in pipe.execute()] == list(expected.values())

    wait_until(drained, 120, f"Redis to equal the batch computation; worker log:\n{worker.log_tail()}", interval_s=2)

    blocks = {scope: redis_client.hgetall(keys.block(scope, "2025-04")) for scope in ("national", "ministry", "province")}
    for field, published in RATES.items():
        for scope, fields in blocks.items():
            assert abs(100 * float(fields[field]) - published[scope]) < 1.0, (field, scope, fields[field])
    assert int(blocks["national"]["received_national_portal"]) == round(PUBLISHED_2025_04_NATIONAL_PORTAL * CONFIG.scale)
    assert int(blocks["national"].get("procedures_not_in_catalogue", "0")) == 0
