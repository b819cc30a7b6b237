"""`GET /v1/dossiers?agency=CODE&period=P`: an agency's dossiers of a period, from the worker
that owns them (issue 15 item 4; what `emc reconcile` reads).

Served on the metrics port, behind the same TLS and basic auth as /metrics
(streams/worker/health.py). The answer is JSON lines, streamed: one line per dossier that counts
in the period (or was voided in it) with what EMC holds and decided (`dossier_record` of
streams/reports/explain.py: procedure, receipt, channel, resolution, outcome, mode, the counts
of the period and every applied event as `emc explain` shows it), then one last line
`{"end": true, "dossiers": N, "read": M}`: a reader without it knows the answer was cut.
With `&dossier=ID` (repeated, up to MAX_DOSSIER_IDS) it answers those dossiers, whatever period
they count in (their `counts` are those of the period asked), read by key. `&view=summary`
answers, without events, what reconciliation compares (`dossier_summary`), for every dossier
with an event in the period: what `emc reconcile` reads first, before the full records of the
dossiers that disagree.

Reading: an agency's rows are one key range of the `dossiers` table (`agency\\x1f...`, in the
RocksDB of its state partition), read with a RocksDB iterator from the HTTP thread. RocksDB
reads are safe beside the agent's writes (an iterator sees a consistent view of the rows), the
iterator is a rocksdict object whose calls hold the GIL, and Faust never closes a revoked
partition's database (it only forgets it), so the event loop is never held by a large answer.

Routing: each worker writes, every snapshot tick, `emc:v1:workers` (RedisKeys.workers): state
partition -> its advertised URL (EMC_ADVERTISED_URL). A worker asked for an agency whose state
partition it does not own answers 307 to the owner's URL (same path and query), so a client may
ask any worker; `emc reconcile` looks the owner up in the same hash and asks it directly. A
partition being moved answers 503 with Retry-After until its new owner has restored it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from rocksdict import ReadOptions

from streams.domain.periods import parse_period
from streams.domain.registry import Registry
from streams.errors import ConfigError
from streams.reports.explain import dossier_record, dossier_summary
from streams.settings import Settings
from streams.sinks.keys import RedisKeys, as_text
from streams.worker.ingest import state_partition_for
from streams.worker.state import row_key

log = logging.getLogger(__name__)

ROUTE = "/v1/dossiers"
CONTENT_TYPE = "application/x-ndjson"
RETRY_AFTER_S = 2
# Bytes of answer lines sent in one write.
WRITE_BYTES = 64 * 1024
# Rows answered between two checks that the partition is still served here.
RECHECK_EVERY = 1000


# Dossiers asked for by id in one request, at most (`&dossier=ID`, repeated).
MAX_DOSSIER_IDS = 500


class RowStore(Protocol):
    """The part of a rocksdict database (raw mode) read here."""

    def items(self, backwards: bool = False, from_key: bytes | None = None,
              read_opt: ReadOptions | None = None) -> Iterator[tuple[bytes, bytes]]: ...
    def get(self, key: bytes) -> bytes | None: ...


def agency_rows(store: RowStore, agency: str) -> Iterator[tuple[str, bytes]]:
    """(dossier id, row) of every dossier of `agency`: its key range, `agency` SEP ... up to
    the next agency byte, read by one RocksDB iterator bounded by RocksDB itself (one call per
    row, not four: seek, valid, key, value, next)."""
    prefix = row_key(agency, "").encode("utf-8")
    bounded = ReadOptions()
    bounded.set_iterate_upper_bound(prefix[:-1] + bytes([prefix[-1] + 1]))  # SEP + 1: the end of the agency's keys
    start = len(prefix)
    for key, value in store.items(from_key=prefix, read_opt=bounded):
        yield key[start:].decode("utf-8"), value


def rows_by_id(store: RowStore, agency: str, dossier_ids: list[str]) -> Iterator[tuple[str, bytes]]:
    """(dossier id, row) of those of `dossier_ids` the agency's state holds."""
    for dossier_id in dossier_ids:
        row = store.get(row_key(agency, dossier_id).encode("utf-8"))
        if row is not None:
            yield dossier_id, row


VIEWS = ("full", "summary")


def answer_lines(rows: Iterator[tuple[str, bytes]], period: str, *, by_id: bool = False, view: str = "full") -> Iterator[bytes]:
    """The JSON lines of the answer: the period's dossiers (`by_id`: every dossier asked for
    that state holds, whatever its period), then the end line."""
    sent = read = 0
    for dossier_id, row in rows:
        read += 1
        if view == "summary":
            record = dossier_summary(dossier_id, row, period)
        else:
            record = dossier_record(dossier_id, row, period, always=by_id)
        if record is not None:
            sent += 1
            yield orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    yield orjson.dumps({"end": True, "dossiers": sent, "read": read}) + b"\n"


@dataclass(frozen=True, slots=True)
class DossierQuery:
    agency: str
    period: str
    dossier_ids: list[str]  # empty: the agency's dossiers of the period
    view: str  # full | summary


def parse_query(query: str, registry: Registry) -> DossierQuery:
    """The request's query, checked; ConfigError with the reason when bad."""
    params = parse_qs(query, keep_blank_values=True)
    agency = (params.get("agency") or [""])[0]
    period = (params.get("period") or [""])[0]
    dossier_ids = params.get("dossier", [])
    view = (params.get("view") or ["full"])[0]
    if view not in VIEWS:
        raise ConfigError(f"view {view!r} is not one of {', '.join(VIEWS)}")
    if not agency or not period:
        raise ConfigError("agency and period are required: /v1/dossiers?agency=CODE&period=P[&dossier=ID...]")
    if len(dossier_ids) > MAX_DOSSIER_IDS:
        raise ConfigError(f"at most {MAX_DOSSIER_IDS} dossier ids per request")
    if registry.get(agency) is None:
        raise ConfigError(f"unknown agency {agency!r}")
    try:
        parse_period(period)
    except ValueError as exc:
        raise ConfigError(f"period: {exc}") from None
    return DossierQuery(agency, period, dossier_ids, view)


@dataclass
class DossierEndpoint:
    """The route's handler. `store_for(partition)` gives the RocksDB database of the dossiers
    table of a state partition this worker serves now, or None when it does not."""

    settings: Settings
    registry: Registry
    store_for: Callable[[int], RowStore | None]
    _redis: redis.Redis | None = None

    def handle(self, request: BaseHTTPRequestHandler, query: str) -> None:
        try:
            q = parse_query(query, self.registry)
        except ConfigError as exc:
            _send_json(request, 400, {"error": str(exc)})
            return
        partition = state_partition_for(q.agency, self.settings.partitions)
        store = self.store_for(partition)
        if store is None:
            self._route(request, partition)
            return
        request.send_response(200)
        request.send_header("Content-Type", CONTENT_TYPE)
        request.send_header("Connection", "close")  # HTTP/1.0, no length: the end of the body is the close
        request.end_headers()
        rows = rows_by_id(store, q.agency, q.dossier_ids) if q.dossier_ids else agency_rows(store, q.agency)
        lines = answer_lines(rows, q.period, by_id=bool(q.dossier_ids), view=q.view)
        buffered: list[bytes] = []
        size = 0
        try:
            for n, line in enumerate(lines, 1):
                if n % RECHECK_EVERY == 0 and self.store_for(partition) is not store:
                    # The partition was revoked: Faust drops its database and opens it anew if
                    # the partition comes back, which fails while this thread still holds it.
                    log.warning("dossier answer cut: the partition moved", extra={"event": "dossier_answer_cut", "agency": q.agency})
                    return
                buffered.append(line)
                size += len(line)
                if size >= WRITE_BYTES:  # the handler's socket writer is unbuffered: one send per line cost as much as the line
                    request.wfile.write(b"".join(buffered))
                    buffered, size = [], 0
            request.wfile.write(b"".join(buffered))
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away
        except Exception as exc:  # noqa: BLE001 - the stream is cut without its end line; say why in the log
            log.warning("dossier answer cut", extra={"event": "dossier_answer_cut", "agency": q.agency, "error": repr(exc)})
        finally:
            lines.close()  # drops the iterator, and with it this thread's hold on the database

    def _route(self, request: BaseHTTPRequestHandler, partition: int) -> None:
        try:
            owner = self._owner_url(partition)
        except RedisError as exc:
            _send_json(request, 503, {"error": f"the owner of state partition {partition} cannot be looked up: {exc}"},
                       retry_after=True)
            return
        if owner is None or owner == self.settings.worker_url:
            _send_json(request, 503, {"error": f"state partition {partition} has no owner serving it yet"}, retry_after=True)
            return
        request.send_response(307)
        request.send_header("Location", owner + request.path)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _owner_url(self, partition: int) -> str | None:
        if self._redis is None:
            # Created in the HTTP thread on first use (no connection at import or build time);
            # redis-py's sync client is thread-safe through its connection pool.
            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                               retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 3))
        url = self._redis.hget(RedisKeys(self.settings.redis_prefix).workers, str(partition))
        return None if url is None else as_text(url)


def _send_json(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any], retry_after: bool = False) -> None:
    data = orjson.dumps(body) + b"\n"
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    if retry_after:
        request.send_header("Retry-After", str(RETRY_AFTER_S))
    request.end_headers()
    request.wfile.write(data)


# Owner entries are written again this often even when nothing changed (a Redis that lost its
# keys, an entry overwritten by a worker that has since lost the partition).
ADVERTISE_EVERY_S = 10.0


@dataclass
class OwnerAdvertiser:
    """Writes `emc:v1:workers` (state partition -> this worker's URL) when the partitions this
    worker serves change, and every ADVERTISE_EVERY_S; called on each snapshot tick."""

    keys: RedisKeys
    url: str
    _partitions: frozenset[int] = frozenset()
    _due: float = 0.0

    async def advertise(self, client: Any, partitions: frozenset[int], now: float) -> None:  # noqa: ANN401 - redis.asyncio.Redis
        if partitions == self._partitions and now < self._due:
            return
        if partitions:
            try:
                await client.hset(self.keys.workers, mapping={str(p): self.url for p in sorted(partitions)})
            except RedisError as exc:
                # Redis is down: the snapshot publisher logs the outage; written on a later tick.
                log.debug("owner entries not written: %r", exc)
                return
        self._partitions, self._due = partitions, now + ADVERTISE_EVERY_S
