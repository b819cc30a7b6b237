"""A broker killed and started again keeps its log (S3 storage in moto_server), and the
workers resume by themselves with every count exact."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.integration


def test_a_killed_broker_started_again_serves_its_whole_log(restartable_broker) -> None:
    servers = f"127.0.0.1:{restartable_broker.port}"
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    for n in range(500):
        producer.send("restart-log", key=b"k", value=str(n).encode())
    producer.flush()
    producer.close()

    restartable_broker.kill()
    restartable_broker.start_again()

    consumer = KafkaConsumer(bootstrap_servers=servers, consumer_timeout_ms=10_000)
    partition = TopicPartition("restart-log", 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    values = [int(record.value) for record in consumer]
    consumer.close()
    assert values == list(range(500))
