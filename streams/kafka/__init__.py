"""Kafka at the edges: topic names and creation, producers, the control-topic feed.

May import `streams.domain`, `streams.sinks` and the cross-cutting settings/errors; never the worker or the CLI.
"""
