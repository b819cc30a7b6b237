"""Traffic: the simple and the profile (calibrated) simulators, calibration data, pacing, sending.

May import `streams.domain` and the cross-cutting settings/errors; only `traffic.py` sends
(through `streams.kafka`, imported when it sends).
"""
