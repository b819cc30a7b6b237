#!/usr/bin/env python3
"""Tansu's S3 storage engine: when does a Fetch of a partition stop answering?

    .venv/bin/python benchmarks/tansu_s3_fetch.py [--objects 100 300 1000] [--waits 100 500 2000]

A broker on `s3://` storage (moto_server), one topic of one partition. The partition is grown
to each `--objects` count by single-record produce requests (each one record-batch object in
the bucket), and after each step a consumer reads from offset 0 with each `--waits` fetch max
wait (ms): records received within 20 s and the time to the first. Then the same with a
partition of a few large batches, read from the middle of a batch.

What it shows (README "Reliability"): every Fetch lists every object of the partition before
it reads one, and a Fetch whose list outlasts its max wait answers empty; a retry lists again,
so a partition past that size is never read, whatever offset is asked. The count of objects,
not of records, is what matters: a large batch is one object, and reading from inside one
returns the records from that offset on.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.local.stack import start_s3, start_tansu  # noqa: E402

VALUE = b"x" * 200


def produce(bootstrap: str, topic: str, records: int, per_request: int) -> None:
    """`records` records in produce requests of `per_request` records (flush after each)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0 if per_request == 1 else 1000,
                             batch_size=16 * 1024 * 1024)
    for n in range(records):
        producer.send(topic, key=b"k%d" % n, value=VALUE, partition=0).add_errback(print)
        if (n + 1) % per_request == 0:
            producer.flush()
    producer.flush()
    producer.close()


def read(bootstrap: str, topic: str, start: int, wait_ms: int, want: int, timeout_s: float = 20.0) -> str:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, request_timeout_ms=60_000,
                             enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, start)
    started = time.monotonic()
    offsets: list[int] = []
    first = None
    while time.monotonic() - started < timeout_s and len(offsets) < want:
        for records in consumer.poll(200).values():
            first = first if first is not None else time.monotonic() - started
            offsets.extend(r.offset for r in records)
    consumer.close()
    when = f"first after {first:.2f} s, from offset {offsets[0]}" if offsets else "nothing"
    return f"{len(offsets):>4} records in {min(time.monotonic() - started, timeout_s):.0f} s ({when})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--waits", type=int, nargs="+", default=[100, 500, 2000], help="fetch max wait, ms")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="emc-tansu-s3-"))
    s3 = start_s3(workdir / "s3")
    broker = start_tansu(workdir / "tansu", s3=s3)
    bootstrap = f"127.0.0.1:{broker.port}"
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("single", 1, 1), NewTopic("batched", 1, 1)])
        admin.close()
        produce(bootstrap, "batched", 500, 100)
        for start in (0, 50, 499):
            print(f"5 objects of 100 records, from offset {start:>3}, wait 100 ms: "
                  f"{read(bootstrap, 'batched', start, 100, 500 - start)}", flush=True)
        grown = 0
        for objects in sorted(args.objects):
            produce(bootstrap, "single", objects - grown, 1)
            grown = objects
            print(f"{s3.record_objects()[('single', 0)]:,} objects of one record:", flush=True)
            for wait_ms in args.waits:
                print(f"  from offset 0, wait {wait_ms:>4} ms: {read(bootstrap, 'single', 0, wait_ms, objects)}", flush=True)
    finally:
        broker.stop()
        s3.stop()
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
