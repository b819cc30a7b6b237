"""The figures of the national EMC bulletins, typed in as the issue quotes them (not read from
the calibration data, so that a wrong table fails the tests)."""

from __future__ import annotations

PUBLISHED_2024 = {
    "province_top10": ["T35", "T48", "T02", "T36", "T96", "T11", "T91", "T10", "T06", "T64"],
    "province_rates": {"T35": 68.54, "T48": 58.89, "T02": 55.76, "T36": 52.96, "T64": 31.85},
    "ministry_top10": ["BCT", "BTC", "BTP", "BLDTBXH", "BHXH", "BTTTT", "BNV", "BKHCN", "BXD", "BGTVT"],
    "ministry_rates": {"BCT": 83.49, "BTC": 78.44, "BTP": 77.66, "BGTVT": 15.66},
    "under10": {
        "ministry": {"BYT", "NHNN", "BGDDT", "BTNMT", "BQP", "BKHDT", "BVHTTDL", "BNG"},
        "province": {"T66", "T30", "T79", "T26", "T01", "T27", "T87"},
    },
    "national": 45.8, "ministry": 63.47, "province": 18.54, "silent": 8,
}
PUBLISHED_2025_04 = {"national": 39.46, "ministry": 51.82, "province": 14.58}
# Issue 14's table for April 2025: indicators 1 and 2 (%), and the online dossiers submitted
# through the national portal (Cổng DVCQG) in the month.
PUBLISHED_2025_04_PROCEDURES = {
    "full_online_procedures": {"national": 50.4, "ministry": 43.09, "province": 50.6},
    "full_online_procedures_used": {"national": 50.65, "ministry": 44.72, "province": 50.77},
}
PUBLISHED_2025_04_NATIONAL_PORTAL = 1_600_000
PUBLISHED_2025_Q1_TOP = ["T91", "T35", "T54", "T96", "T38", "T14", "T33", "T36", "T72", "T58"]
