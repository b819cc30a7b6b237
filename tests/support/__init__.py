"""Helpers shared by the unit and integration tests (no test lives here).

- `paths`: the repository root.
- `events`: wire-form events and RFC 3339 text, as the producers send them.
- `metrics`: reading samples out of /metrics text or a collector registry.
- `strategies`: hypothesis strategies of valid and invalid events.
- `oracle`: the independent batch computation every count is compared with.
- `published_figures`: the EMC's published 2024 figures the calibration reproduces.
"""
