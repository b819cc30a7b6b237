"""The state stage reads skipped batch messages straight from the broker: exactly the range
asked, in order, from the partition's start when no position is known."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka.security import aiokafka_security
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.worker.sequence import BatchReader

pytestmark = pytest.mark.integration


def test_ranges_of_a_partition_come_back_in_order(settings: Settings) -> None:
    ensure_topics(settings, names=[settings.batch_topic])

    async def run() -> tuple[list, list, list]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for n in range(30):
                await producer.send_and_wait(settings.batch_topic, f"p1-{n}".encode(), partition=1)
                if n % 3 == 0:
                    await producer.send_and_wait(settings.batch_topic, f"p2-{n}".encode(), partition=2)
        finally:
            await producer.stop()
        reader = BatchReader(settings.bootstrap_servers, settings.batch_topic, aiokafka_security(settings))
        try:
            middle = [item async for item in reader.read(1, 7, 19)]
            start = [item async for item in reader.read(2, None, 4)]
            empty = [item async for item in reader.read(1, 5, 5)]
        finally:
            await reader.stop()
        return middle, start, empty

    middle, start, empty = asyncio.run(run())
    assert middle == [(n, f"p1-{n}".encode()) for n in range(7, 19)]
    assert start == [(n, f"p2-{3 * n}".encode()) for n in range(4)]
    assert empty == []
