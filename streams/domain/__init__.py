"""The pure core: events and validation, classification, periods, registry, rankings, indicators, targets.

Imports nothing from the rest of `streams` and does no I/O beyond reading its shipped data files.
"""
