"""Structured logs: one JSON object per line, saying which process wrote it when it is not the main one."""

from __future__ import annotations

import json
import logging
import multiprocessing

from streams.logs import JsonFormatter


def _line(process_name: str) -> dict:
    record = logging.LogRecord("streams.test", logging.WARNING, __file__, 1, "broker %s", ("gone",), None)
    record.processName = process_name
    record.event = "broker_outage_started"
    return json.loads(JsonFormatter().format(record))


def test_a_line_of_the_main_process_has_no_process_field() -> None:
    line = _line(multiprocessing.current_process().name)
    assert line["msg"] == "broker gone" and line["event"] == "broker_outage_started" and line["level"] == "warning"
    assert "process" not in line


def test_a_line_of_an_ingest_process_names_it() -> None:
    assert _line("emc-ingest-0")["process"] == "emc-ingest-0"
