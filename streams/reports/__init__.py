"""Reports read back from Redis and the changelog: gathering, rendering (text/JSON/HTML), explain.

May import `streams.domain`, `streams.sinks`, `streams.kafka`, `streams.worker` (its row codec); never the CLI.
"""
