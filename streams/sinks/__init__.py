"""Outputs of a worker: Redis snapshots and rankings, and the Prometheus collector.

May import `streams.domain` and the cross-cutting settings/errors; never the worker or the CLI.
"""
