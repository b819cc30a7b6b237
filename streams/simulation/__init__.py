"""Calibrated traffic: the simple and the profile simulators, calibration data, pacing.

May import `streams.domain` only (plus the cross-cutting errors); publishing is the CLI's job.
"""
