"""The worker's Faust app and consumer: no event-loop turns per send, short fetch waits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest

from streams.settings import load_settings
from streams.worker import faust_transport
from streams.worker.app import _faust_app


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    settings = load_settings({"broker": "kafka://127.0.0.1:1", "data_dir": str(tmp_path)}, environ={})
    return _faust_app(settings)


def test_a_started_producer_is_returned_without_yielding_to_the_loop(app: faust.App, monkeypatch: pytest.MonkeyPatch) -> None:
    starts = []

    async def start(self: faust.App):  # Faust's maybe_start_producer, minus the start itself
        starts.append(self)
        return self.producer

    monkeypatch.setattr(faust.App.maybe_start_producer, "__wrapped__", start)
    first = asyncio.run(app.maybe_start_producer())  # the first call goes through Faust's method
    assert first is app.producer and starts == [app]

    # Every later call (one per message the producer buffer sends) completes without
    # suspending: mode's @stampede would have awaited asyncio.sleep(0) three times.
    call = app.maybe_start_producer()
    with pytest.raises(StopIteration) as done:
        call.send(None)
    assert done.value.value is app.producer and starts == [app]


def test_faust_consumer_waits_at_most_100_ms_per_fetch(app: faust.App) -> None:
    faust_transport.install(app)
    thread = app.consumer._thread
    assert isinstance(thread, faust_transport.FetchHighwaterConsumerThread)

    async def create():  # aiokafka clients are made inside a running loop
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(create())
    assert consumer._fetch_max_wait_ms == faust_transport.FETCH_MAX_WAIT_MS == 100


def test_the_consumer_fetch_wait_is_a_setting(tmp_path: Path) -> None:
    """EMC_STATE_FETCH_MAX_WAIT_MS: seconds on Tansu with S3 storage, whose Fetch lists every
    record object of a partition within the wait (README "Reliability")."""
    settings = load_settings({"broker": "kafka://127.0.0.1:1", "data_dir": str(tmp_path)},
                             environ={"EMC_STATE_FETCH_MAX_WAIT_MS": "2500"})
    app = _faust_app(settings)
    faust_transport.install(app, settings.state_fetch_max_wait_ms)

    async def create():
        return app.consumer._thread._create_worker_consumer(app.transport)

    assert asyncio.run(create())._fetch_max_wait_ms == 2500
