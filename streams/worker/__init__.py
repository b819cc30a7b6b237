"""The running worker: composition root (app), ingest stage, state applier, row codec, Faust adapters.

May import `streams.domain`, `streams.sinks`, `streams.kafka`, and the cross-cutting settings/errors/logs.
"""
