"""Monitoring as code: Grafana dashboards and their PNG rendering (build-time only).

The only place matplotlib is imported. May import `streams.domain`.
"""
