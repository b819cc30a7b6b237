"""Structured (one JSON object per line) logs, quiet by default (level warn)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

_STANDARD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}

LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.processName != "MainProcess":
            # A worker's ingest children (streams.worker.ingest_process) share its stderr:
            # say which of them a line comes from.
            entry["process"] = record.processName
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str, handler_filter: logging.Filter | None = None) -> dict:
    """A dictConfig for the worker: JSON lines on stderr at the given level (crit..debug),
    through `handler_filter` when given (the same instance each time the config is applied)."""
    handler: dict = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    config: dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "streams.logs.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "root": {"level": LEVELS[level], "handlers": ["stderr"]},
    }
    if handler_filter is not None:
        config["filters"] = {"handler_filter": {"()": lambda: handler_filter}}
        handler["filters"] = ["handler_filter"]
    return config


def configure(level: str, handler_filter: logging.Filter | None = None) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, handler_filter))
