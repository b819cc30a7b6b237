"""The dossier endpoint over a real RocksDB and the worker's own HTTP server, in this process."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from rocksdict import Options, Rdict

from streams.domain.events import DossierEvent
from streams.domain.registry import Registry
from streams.errors import ExternalServiceError
from streams.local.stack import free_port
from streams.reports.reconcile import READ_BYTES, WorkerClient
from streams.settings import load_settings
from streams.worker.dossier_api import RECHECK_EVERY, ROUTE, DossierEndpoint
from streams.worker.health import Health, serve_http
from streams.worker.state import AppliedEvent, encode_dossier_row, row_key

DEC_10 = 1_733_799_600_000_000  # 2024-12-10T03:00:00Z
DOSSIERS = RECHECK_EVERY + 500


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Rdict]:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    store = Rdict(str(tmp_path / "dossiers"), options=options)
    for n in range(DOSSIERS):
        d = f"d{n:05d}"
        store[row_key("T01", d).encode()] = encode_dossier_row([
            AppliedEvent(0, 2 * n, DossierEvent(f"{d}-r", "T01", "received", DEC_10, d, "1.001", "online")),
            AppliedEvent(0, 2 * n + 1, DossierEvent(f"{d}-x", "T01", "result_returned", DEC_10 + 3_600_000_000, d,
                                                    delivery="online"))])
    yield store
    store.close()


def _answer(store_for, view: str = "summary", client: bool = False) -> list[dict]:  # noqa: ANN001
    """The answer's lines as read by urllib, or (`client`) as `emc reconcile`'s WorkerClient yields them."""
    port = free_port()
    endpoint = DossierEndpoint(load_settings({"metrics_port": port, "partitions": 1}, environ={}), Registry.load(), store_for)
    server = serve_http("127.0.0.1", port, CollectorRegistry(), Health(stall_after_s=60), routes={ROUTE: endpoint.handle})
    try:
        if client:
            return list(WorkerClient(f"http://127.0.0.1:{port}", timeout_s=30).lines("T01", "2024-12", view=view))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{ROUTE}?agency=T01&period=2024-12&view={view}", timeout=30) as r:
            return [orjson.loads(line) for line in r]
    finally:
        server.shutdown()
        server.server_close()


def test_the_agency_is_streamed_with_an_end_line(db: Rdict) -> None:
    lines = _answer(lambda partition: db)
    assert lines[-1] == {"end": True, "dossiers": DOSSIERS, "read": DOSSIERS}
    assert [line["dossier_id"] for line in lines[:2]] == ["d00000", "d00001"]
    assert lines[0]["resolved"] and lines[0]["mode"] == "full_online" and "events" not in lines[0]
    full = _answer(lambda partition: db, view="full")
    assert [e["event_id"] for e in full[0]["events"]] == ["d00000-r", "d00000-x"] and full[0]["counts"]["resolved"] == 1


def test_an_answer_is_cut_when_the_partition_moves_away(db: Rdict) -> None:
    calls = []

    def store_for(partition: int) -> Rdict | None:
        calls.append(partition)
        return db if len(calls) == 1 else None  # revoked after the answer began

    lines = _answer(store_for)
    assert len(lines) < RECHECK_EVERY and not any(line.get("end") for line in lines)  # no end line: the reader knows
    calls.clear()
    with pytest.raises(ExternalServiceError, match="cut before its end"):
        _answer(store_for, client=True)


def test_the_client_reads_the_answer_across_its_chunks(db: Rdict) -> None:
    summaries = _answer(lambda partition: db, client=True)
    assert len(orjson.dumps(summaries)) > READ_BYTES  # several chunks: lines split across them are joined
    assert summaries == _answer(lambda partition: db)[:-1]  # the end line is not a dossier
