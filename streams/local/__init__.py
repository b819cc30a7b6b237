"""`emc local`: start a Tansu broker and a redis-server on free ports, a worker, and calibrated traffic.

May import every other subpackage except the CLI; used by the CLI and by the integration tests.
"""
