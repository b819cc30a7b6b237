"""Redis least privilege, against a real redis-server started with the shipped ACL file (the
one docker-compose mounts and `emc local` uses): no anonymous access, a read-only reader, a
writer confined to the emc:v1: keys and to the commands the worker sends — and the worker,
`emc report` and `emc agency status` still work as those users."""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from streams.cli.main import main
from streams.domain.periods import today_local
from streams.domain.registry import Registry
from streams.kafka.producer import EventProducer
from streams.local.stack import REDIS_ACL_FILE, REDIS_DEV_READER, REDIS_DEV_WRITER, start_redis
from streams.settings import redacted_url
from tests.integration.conftest import WorkerProcess
from tests.support.events import wire_event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PROVINCE = next(a.code for a in Registry.load().valid_on(today_local()) if a.block == "province")


@pytest.fixture
def acl_redis(tmp_path):
    process = start_redis(tmp_path / "acl-redis", aclfile=REDIS_ACL_FILE)
    yield process
    process.stop()


def url(user: tuple[str, str], port: int) -> str:
    return f"redis://{user[0]}:{user[1]}@127.0.0.1:{port}/0"


def test_anonymous_reader_and_writer_have_only_their_rights(acl_redis) -> None:
    anonymous = redis.Redis(port=acl_redis.port)
    with pytest.raises((AuthenticationError, ResponseError), match="(?i)auth"):
        anonymous.ping()
    writer = redis.Redis.from_url(url(REDIS_DEV_WRITER, acl_redis.port), decode_responses=True)
    reader = redis.Redis.from_url(url(REDIS_DEV_READER, acl_redis.port), decode_responses=True)

    writer.hset("emc:v1:agency:HNI:2025", mapping={"resolved": 3})
    writer.zadd("emc:v1:rank:province:2025", {"HNI": 0.5})
    assert reader.hgetall("emc:v1:agency:HNI:2025") == {"resolved": "3"}
    assert reader.zrevrange("emc:v1:rank:province:2025", 0, 4, withscores=True) == [("HNI", 0.5)]

    for denied in (lambda: reader.hset("emc:v1:agency:HNI:2025", "resolved", 99),
                   lambda: reader.delete("emc:v1:agency:HNI:2025"),
                   lambda: reader.get("other:key"), lambda: reader.flushall(), lambda: reader.keys("*"),
                   lambda: reader.scan(0), lambda: reader.config_get("*")):
        with pytest.raises(NoPermissionError):
            denied()
    for denied in (lambda: writer.flushall(), lambda: writer.flushdb(), lambda: writer.keys("*"),
                   lambda: writer.scan(0), lambda: writer.config_get("*"), lambda: writer.config_set("appendonly", "no"),
                   lambda: writer.set("other:key", 1), lambda: writer.hset("emc:v2:x", "a", 1),
                   lambda: writer.get("session:123"), lambda: writer.execute_command("ACL", "LIST")):
        with pytest.raises(NoPermissionError):
            denied()
    assert reader.hgetall("emc:v1:agency:HNI:2025") == {"resolved": "3"}  # nothing was flushed


def test_the_worker_writes_as_the_writer_and_the_cli_reads_as_the_reader(settings, acl_redis, tmp_path, capsys) -> None:
    settings = replace(settings, redis_url=url(REDIS_DEV_WRITER, acl_redis.port), redis_prefix="emc:v1:")
    process = WorkerProcess(settings, tmp_path / "acl-worker.log").start()
    try:
        with EventProducer(settings) as producer:
            for event in (wire_event(PROVINCE, "acl-r", "ACL-1", "received", "2025-05-02T02:00:00Z", channel="online", procedure_code="1"),
                          wire_event(PROVINCE, "acl-x", "ACL-1", "result_returned", "2025-05-03T02:00:00Z", delivery="online")):
                producer.send(PROVINCE.encode(), orjson.dumps(event))
        reader_url = url(REDIS_DEV_READER, acl_redis.port)
        reader = redis.Redis.from_url(reader_url, decode_responses=True)
        wait_until(lambda: reader.hgetall(f"emc:v1:agency:{PROVINCE}:2025-05").get("full_online") == "1", 120,
                   f"the worker's snapshot as emc-writer; log:\n{process.log_tail()}")
        wait_until(lambda: reader.zscore("emc:v1:rank:province:2025-05", PROVINCE) == 1.0, 60, "the leader's ranking")
        log_text = process.log_path.read_text()
        assert REDIS_DEV_WRITER[1] not in log_text and "NOPERM" not in log_text
    finally:
        process.discard()

    capsys.readouterr()
    assert main(["agency", "status", "--format", "json", "--redis-url", reader_url]) == 0
    statuses = json.loads(capsys.readouterr().out)
    assert any(row.get("code", row.get("agency")) == PROVINCE for row in statuses)
    assert main(["report", "--period", "2025-05", "--format", "json", "--redis-url", reader_url]) == 0
    assert PROVINCE in capsys.readouterr().out
    assert redacted_url(reader_url) == f"redis://emc-reader:***@127.0.0.1:{acl_redis.port}/0"
