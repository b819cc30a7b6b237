"""Grafana dashboards as code: the national overview and the per-agency dashboard.

    python -m streams.monitoring.dashboards --out deploy/grafana/dashboards          # regenerate
    python -m streams.monitoring.dashboards --out deploy/grafana/dashboards --check  # exit 1 when stale

The JSON written here is committed and provisioned into Grafana by
deploy/grafana/provisioning/dashboards/emc.yml. Queries read the recording rules of
deploy/prometheus/rules/recording.yml (`emc:*`), which already aggregate away the worker
that exported a series, so every panel is right with any number of workers.
`all_panel_queries` gives each panel's PromQL with the dashboard variables filled in, for a
test that runs them against a live Prometheus (Grafana itself cannot run here).

Pure Python, standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streams.domain.periods import WINDOWS
from streams.domain.rankings import DEFAULT_THRESHOLD
from streams.domain.registry import BLOCKS, SCOPES
from streams.domain.targets import block_targets

# The provisioned datasource (deploy/grafana/provisioning/datasources/prometheus.yml).
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "emc-prometheus"}
NATIONAL_UID = "emc-national"
AGENCY_UID = "emc-agency"
DASHBOARD_FILES: dict[str, str] = {NATIONAL_UID: "emc-national.json", AGENCY_UID: "emc-agency.json"}

# Gauge colours: green from the target on. The targets in force are exported as
# emc_target_ratio and drawn as lines; a threshold cannot follow a query, so gauges show
# the 2025 targets (read from the same data file as the worker's).
TARGETS_2025 = block_targets(2025)
LOW_RATE = float(DEFAULT_THRESHOLD)  # the published "agencies under 10 %" list
BLOCK_NAMES = {"national": "National (toàn quốc)", "ministry": "Ministries (khối bộ, ngành)",
               "province": "Provinces (khối địa phương)"}
GRID_WIDTH = 24

_VARIABLE = re.compile(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)")


# -- panel building blocks ------------------------------------------------------------------

def _target(expr: str, legend: str = "", *, table: bool = False) -> dict[str, Any]:
    """A Prometheus query; `table` = one instant value per series, shown as table rows."""
    target: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
    if table:
        target.update(instant=True, range=False, format="table")
    else:
        target.update(instant=False, range=True, format="time_series")
    return target


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": value, "color": color} for value, color in steps]}


def _ratio_defaults(green_from: float | None = None) -> dict[str, Any]:
    steps = [(None, "red"), (LOW_RATE, "orange")]
    if green_from is not None:
        steps.append((green_from, "green"))
    return {"unit": "percentunit", "min": 0, "max": 1, "decimals": 1, "thresholds": _thresholds(*steps)}


def _panel(kind: str, title: str, targets: Sequence[dict[str, Any]], *, description: str = "",
           defaults: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
           overrides: list[dict[str, Any]] | None = None,
           transformations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults or {}, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        panel["transformations"] = transformations
    return panel


def _stat(title: str, targets: Sequence[dict[str, Any]], *, text_only: bool = False, **kwargs: Any) -> dict[str, Any]:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "colorMode": "none" if text_only else "value", "graphMode": "none",
               "textMode": "name" if text_only else "value_and_name", "justifyMode": "auto"}
    return _panel("stat", title, targets, options=options, **kwargs)


def _gauge(title: str, target: dict[str, Any], green_from: float, **kwargs: Any) -> dict[str, Any]:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "showThresholdMarkers": True, "showThresholdLabels": False}
    return _panel("gauge", title, [target], defaults=_ratio_defaults(green_from), options=options, **kwargs)


def _timeseries(title: str, targets: Sequence[dict[str, Any]], *, unit: str = "short", stacked: bool = False,
                ratio: bool = False, dashed: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """`dashed`: a regex of series names (e.g. targets) drawn as dashed lines."""
    defaults: dict[str, Any] = _ratio_defaults() if ratio else {"unit": unit, "min": 0}
    defaults["custom"] = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 20 if stacked else 0,
                          "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
                          "showPoints": "never", "spanNulls": False,
                          "thresholdsStyle": {"mode": "off"}}
    defaults["color"] = {"mode": "palette-classic"}
    overrides = []
    if dashed:
        overrides.append({"matcher": {"id": "byRegexp", "options": dashed},
                          "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]})
    options = {"legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull"]},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return _panel("timeseries", title, targets, defaults=defaults, options=options, overrides=overrides, **kwargs)


def _table(title: str, expr: str, *, value_name: str, unit: str = "short", hide_value: bool = False,
           sort_desc: bool = True, link_agency: bool = True, matrix: tuple[str, str] | None = None,
           **kwargs: Any) -> dict[str, Any]:
    """An instant query as a table: one row per series, its labels as columns; with `matrix`
    (row label, column label), one row per value of the first and a column per value of the second."""
    hidden = {"Time": True, "__name__": True, "job": True, "instance": True, "Value": hide_value}
    transformations: list[dict[str, Any]] = [{"id": "organize", "options": {
        "excludeByName": hidden,
        "indexByName": {"agency": 0, "name": 1, "block": 2, "Value": 3},
        "renameByName": {"agency": "code", "Value": value_name},
    }}]
    if matrix is not None:
        transformations = [{"id": "groupingToMatrix",
                            "options": {"rowField": matrix[0], "columnField": matrix[1], "valueField": "Value"}}]
    defaults: dict[str, Any] = {"unit": unit, "custom": {"align": "auto"}}
    if unit == "percentunit":
        defaults.update(decimals=1)
    if link_agency:
        # A click on a row opens the agency's own dashboard.
        defaults["links"] = [{"title": "Agency dashboard",
                              "url": f"/d/{AGENCY_UID}?var-agency=${{__data.fields.code}}&var-window=${{window}}"}]
    options = {"showHeader": True, "footer": {"show": False, "reducer": ["sum"], "fields": ""},
               "sortBy": [] if hide_value or matrix else [{"displayName": value_name, "desc": sort_desc}]}
    return _panel("table", title, [_target(expr, table=True)], defaults=defaults, options=options,
                  transformations=transformations, **kwargs)


def _with_name(expr: str, copy: str = "name") -> str:
    """Adds the agency's Vietnamese name (and `copy` labels) from emc_agency_info to `expr`."""
    return f"({expr}) * on (agency) group_left ({copy}) emc:agency_info:max"


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _layout(items: Sequence[tuple[dict[str, Any], int, int]]) -> list[dict[str, Any]]:
    """Places (panel, width, height) left to right, wrapping at the grid width; a row starts a
    new line and spans it. Ids follow the order of `items`."""
    panels: list[dict[str, Any]] = []
    x = y = line_height = 0
    for panel_id, (panel, width, height) in enumerate(items, start=1):
        is_row = panel["type"] == "row"
        if is_row:
            width, height = GRID_WIDTH, 1
        if is_row or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        panels.append(dict(panel, id=panel_id, gridPos={"h": height, "w": width, "x": x, "y": y}))
        x += width
        line_height = max(line_height, height)
    return panels


def _window_variable() -> dict[str, Any]:
    return {
        "type": "custom", "name": "window", "label": "Period",
        "description": "The current calendar period in Asia/Ho_Chi_Minh time",
        "query": ",".join(WINDOWS), "multi": False, "includeAll": False,
        "current": {"selected": True, "text": "month", "value": "month"},
        "options": [{"selected": w == "month", "text": w, "value": w} for w in WINDOWS],
    }


def _dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]],
               variables: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["emc"],
        "timezone": "Asia/Ho_Chi_Minh",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-7d", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "annotations": {"list": []},
        "templating": {"list": variables},
        "links": links,
        "panels": panels,
    }


# -- the dashboards -------------------------------------------------------------------------

# The bulletin's three toàn trình rates (issue 14): indicator 1 (full-online procedures / all
# procedures in force), 2 (full-online procedures used online / procedures used) and 3 (the
# headline: fully-online dossiers / resolved dossiers), as the `indicator` label of a table.
THREE_RATES: tuple[tuple[str, str], ...] = (
    ("full_online_procedures", "1. procedures"),
    ("full_online_procedures_used", "2. procedures used"),
    ("full_online", "3. dossiers"),
)
_THREE_RATES_DESCRIPTION = (
    "The bulletin's three toàn trình rates: 1. full-online procedures / all procedures in force (the procedure "
    "catalogue as at the period's last day); 2. full-online procedures that received online dossiers / procedures "
    "that received any dossier; 3. fully-online dossiers / resolved dossiers (the headline). 1 and 2 need the "
    "procedure catalogue (emc catalogue import).")


def _three_rates(series: str, headline: str, by: str) -> str:
    """The three rates of `series` (emc_indicator_ratio or emc_block_indicator_ratio) and
    `headline` (the recorded full-online rate) as one vector, told apart by the label
    `indicator`, whose values are THREE_RATES' titles (they head the table's columns)."""
    parts = []
    for name, title in THREE_RATES:
        source = (f'max by ({by}) ({series}{{indicator="{name}", $selector}})' if name != "full_online"
                  else f"max by ({by}) ({headline}{{$selector}})")
        parts.append(f'label_replace({source}, "indicator", "{title}", "", "")')
    return " or ".join(parts)


def national_dashboard() -> dict[str, Any]:
    window = 'window="$window"'
    gauges = [
        (_gauge(f"{BLOCK_NAMES[block]}: full-online rate ($window)",
                _target(f'emc:block_full_online_ratio:ratio{{block="{block}", {window}}}', block),
                TARGETS_2025[block],
                description=f"Fully-online dossiers / resolved dossiers in the current period. "
                            f"Green from the 2025 target ({TARGETS_2025[block]:.0%})."), 5, 6)
        for block in SCOPES
    ]
    rankings = []
    for block in BLOCKS:
        rate = f'emc:agency_full_online_ratio:max{{block="{block}", {window}}}'
        rankings.append((_table(f"Top 10 {block} agencies ($window)", f"topk(10, {_with_name(rate)})",
                                value_name="rate", unit="percentunit"), 6, 10))
        rankings.append((_table(f"Bottom 10 {block} agencies ($window)", f"bottomk(10, {_with_name(rate)})",
                                value_name="rate", unit="percentunit", sort_desc=False), 6, 10))
    items: list[tuple[dict[str, Any], int, int]] = [
        (_row("Full-online rate vs targets"), 0, 0),
        *gauges,
        (_stat("Targets ($window)", [_target(f"emc:block_target_ratio:max{{{window}}}", "{{block}}")],
               defaults={"unit": "percentunit", "decimals": 0},
               description="emc_target_ratio as exported by the leader worker"), 9, 6),
        (_timeseries("Full-online rate vs target by block ($window)",
                     [_target(f"emc:block_full_online_ratio:ratio{{{window}}}", "{{block}}"),
                      _target(f"emc:block_target_ratio:max{{{window}}}", "target {{block}}")],
                     ratio=True, dashed="target .*"), 14, 9),
        (_timeseries("Resolved dossiers by mode, national ($window)",
                     [_target(f'emc:block_dossiers:sum{{block="national", mode!="all", {window}}}', "{{mode}}")],
                     stacked=True), 10, 9),
        (_row("Rankings"), 0, 0),
        *rankings,
        (_table("Agencies under 10 % ($window)",
                _with_name(f"emc:agency_full_online_ratio:max{{{window}}} < {LOW_RATE}"),
                value_name="rate", unit="percentunit", sort_desc=False,
                description="Agencies that resolved dossiers in the period and handled under 10 % of them fully "
                            "online"), 24, 8),
        (_row("Ba tỷ lệ toàn trình: the three full-online rates"), 0, 0),
        (_table("Three full-online rates by block ($window)",
                _three_rates("emc_block_indicator_ratio", "emc:block_full_online_ratio:ratio", "block")
                .replace("$selector", window),
                value_name="rate", unit="percentunit", link_agency=False, matrix=("block", "indicator"),
                description="A row per block (national, ministry, province), as the bulletin gives them. "
                            + _THREE_RATES_DESCRIPTION), 10, 7),
        (_timeseries("Three full-online rates, national ($window)",
                     [_target(f'max(emc_block_indicator_ratio{{block="national", indicator="{name}", {window}}})', title)
                      if name != "full_online" else
                      _target(f'emc:block_full_online_ratio:ratio{{block="national", {window}}}', title)
                      for name, title in THREE_RATES],
                     ratio=True, description=_THREE_RATES_DESCRIPTION), 14, 7),
        (_table("Three full-online rates by agency ($window)",
                _with_name(_three_rates("emc_indicator_ratio", "emc:agency_full_online_ratio:max", "agency")
                           .replace("$selector", window)),
                value_name="rate", unit="percentunit", link_agency=False, matrix=("name", "indicator"),
                description="A row per agency that has any of the three in the period. "
                            + _THREE_RATES_DESCRIPTION), 24, 10),
        (_row("Other indicators"), 0, 0),
        (_table("Indicators by block ($window)",
                f"max by (block, indicator) (emc_block_indicator_ratio{{{window}}})",
                value_name="rate", unit="percentunit", link_agency=False, matrix=("block", "indicator"),
                description="A row per block, a column per indicator, from the same counts: online_payment_rate "
                            "(online payments / payments), online_payment_amount_rate (by amount), digitization_rate (digitized / received), "
                            "electronic_result_rate (electronic results / completed), on_time_rate (on time / "
                            "(on time + late)), online_received_rate (received online / received), national_portal_rate "
                            "(received through the national portal / received online). Absent "
                            "when the denominator is 0."), 24, 7),
        (_row("Connectivity"), 0, 0),
        (_stat("Agencies by status", [_target("sum by (status) (emc:block_agencies_by_status:sum)", "{{status}}")],
               description="connected, silent (no event nor heartbeat for EMC_SILENT_AFTER), maintenance, "
                           "never (no event ever)"), 6, 8),
        (_table("Silent agencies: time since last event or heartbeat",
                _with_name('(time() - emc:agency_last_seen_timestamp_seconds:max) '
                           '* on (agency) group_left (block) (emc:agency_status:max{status="silent"} == 1)'),
                value_name="silent for", unit="s"), 6, 8),
        (_table("Never-connected agencies", _with_name('emc:agency_status:max{status="never"} == 1'),
                value_name="never", hide_value=True), 6, 8),
        (_table("Agencies in maintenance", _with_name("emc:agency_maintenance:max == 1", "block, name"),
                value_name="maintenance", hide_value=True), 6, 8),
        (_row("Pipeline"), 0, 0),
        (_timeseries("Events consumed by result (per second)",
                     [_target("sum by (result) (emc:events:rate5m)", "{{result}}")], unit="ops",
                     description="applied, duplicate (already applied event_id), dead_letter (sent to "
                                 "emc.dossier-events.dlq.v1)"), 8, 8),
        (_timeseries("Dead letters by event type (per second)",
                     [_target('sum by (type) (emc:events:rate5m{result="dead_letter"})', "{{type}}")],
                     unit="ops"), 8, 8),
        (_timeseries("Input consumer lag per partition (messages)",
                     [_target("emc:consumer_lag_messages:max", "{{topic}}[{{partition}}]")]), 5, 8),
        (_stat("Workers up", [_target('sum(up{job="emc-worker"})', "up"),
                              _target('count(up{job="emc-worker"})', "scraped")]), 3, 8),
    ]
    return _dashboard(
        NATIONAL_UID, "EMC: national overview",
        "Share of administrative-procedure dossiers handled fully online (trực tuyến toàn trình), nationally, "
        "by block and by agency, in the current calendar period (Asia/Ho_Chi_Minh).",
        _layout(items), [_window_variable()],
        [{"title": "Agency dashboard", "type": "link", "url": f"/d/{AGENCY_UID}", "keepTime": True,
          "includeVars": True, "icon": "dashboard"}],
    )


def agency_dashboard() -> dict[str, Any]:
    agency = 'agency="$agency"'
    window = 'window="$window"'
    rate = f"emc:agency_full_online_ratio:max{{{agency}, {window}}}"
    items: list[tuple[dict[str, Any], int, int]] = [
        (_row("Agency $agency"), 0, 0),
        (_stat("Agency", [_target(f"emc:agency_info:max{{{agency}}}", "{{name}} ({{agency}}, {{block}})")],
               text_only=True), 8, 4),
        (_stat("Status", [_target(f"emc:agency_status:max{{{agency}}} == 1", "{{status}}")], text_only=True,
               description="connected, silent, maintenance or never (no event ever)"), 4, 4),
        (_stat("Since last event / heartbeat",
               [_target(f"time() - max by (agency) (emc_agency_last_event_timestamp_seconds{{{agency}}})", "event"),
                _target(f"time() - max by (agency) (emc_agency_last_heartbeat_timestamp_seconds{{{agency}}})",
                        "heartbeat")],
               defaults={"unit": "s", "decimals": 0}), 8, 4),
        (_stat("Maintenance", [_target(f"emc:agency_maintenance:max{{{agency}}}", "maintenance")],
               defaults={"mappings": [{"type": "value", "options": {"0": {"text": "no"}, "1": {"text": "yes"}}}]}),
         4, 4),
        (_row("Full-online rate"), 0, 0),
        (_gauge("Full-online rate ($window)", _target(rate, "{{agency}}"), min(TARGETS_2025.values()),
                description="Fully-online dossiers / resolved dossiers in the current period; empty when the "
                            "agency resolved nothing"), 6, 7),
        (_stat("Target ($window)", [_target(f"emc:agency_target_ratio:max{{{agency}, {window}}}", "target")],
               defaults={"unit": "percentunit", "decimals": 0}), 4, 7),
        (_stat("Rank in block ($window)",
               [_target(f"count(emc:agency_full_online_ratio:max{{{window}}} >= on (block, window) group_left () "
                        f"{rate})", "rank"),
                _target(f"count(emc:agency_full_online_ratio:max{{{window}}} and on (block, window) {rate})", "of")],
               description="1 = the highest rate in the agency's block; agencies that resolved nothing are not "
                           "ranked"), 4, 7),
        (_stat("Three full-online rates ($window)",
               [_target(f'max(emc_indicator_ratio{{{agency}, indicator="{name}", {window}}})', title)
                if name != "full_online" else _target(rate, title) for name, title in THREE_RATES],
               defaults={"unit": "percentunit", "decimals": 1}, description=_THREE_RATES_DESCRIPTION), 24, 5),
        (_table("Resolved dossiers by mode and period", f"emc:agency_dossiers:max{{{agency}}}",
                value_name="dossiers", link_agency=False), 10, 7),
        (_timeseries("Full-online rate by period",
                     [_target(f"emc:agency_full_online_ratio:max{{{agency}}}", "{{window}}"),
                      _target(f'emc:agency_target_ratio:max{{{agency}, window="year"}}', "target")],
                     ratio=True, dashed="target"), 12, 9),
        (_timeseries("Daily rate vs the previous week",
                     [_target(f'emc:agency_full_online_ratio:max{{{agency}, window="day"}}', "today"),
                      _target(f"emc:agency_daily_full_online_ratio:avg_7d{{{agency}}}", "previous 7 days")],
                     ratio=True, dashed="previous 7 days",
                     description="The sharp-drop alert compares these two"), 12, 9),
        (_timeseries("Resolved dossiers by mode ($window)",
                     [_target(f'emc:agency_dossiers:max{{{agency}, mode!="all", {window}}}', "{{mode}}")],
                     stacked=True), 24, 8),
        (_table("Other indicators ($window)",
                f"max by (indicator) (emc_indicator_ratio{{{agency}, {window}}})",
                value_name="rate", unit="percentunit", link_agency=False,
                description="Online payments (by count and amount), digitization, electronic results, on-time "
                            "resolution, dossiers received online; absent when the denominator is 0"), 24, 7),
    ]
    agency_variable = {
        "type": "query", "name": "agency", "label": "Agency", "datasource": DATASOURCE,
        "definition": "label_values(emc_dossiers, agency)",
        "query": {"query": "label_values(emc_dossiers, agency)", "refId": "agency"},
        "refresh": 2, "sort": 1, "multi": False, "includeAll": False, "current": {},
    }
    return _dashboard(
        AGENCY_UID, "EMC: agency",
        "One agency's full-online rate, counts, target, rank and connection, in the current calendar period "
        "(Asia/Ho_Chi_Minh).",
        _layout(items), [agency_variable, _window_variable()],
        [{"title": "National overview", "type": "link", "url": f"/d/{NATIONAL_UID}", "keepTime": True,
          "includeVars": True, "icon": "dashboard"}],
    )


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {DASHBOARD_FILES[d["uid"]]: d for d in (national_dashboard(), agency_dashboard())}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


# -- queries, for tests against a live Prometheus --------------------------------------------

def _panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel["type"] == "row":
            yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels
        else:
            yield panel


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Fills in Grafana's `$name`, `${name}` and `[[name]]`; an unknown variable is an error,
    so that a query is never sent with a `$` left in it."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return variables[name]
    return _VARIABLE.sub(value, expr)


def all_panel_queries(dashboard: dict[str, Any], variables: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, variables substituted (also in
    the title). Raises KeyError when a variable has no value."""
    return [(substitute(panel["title"], variables), substitute(target["expr"], variables))
            for panel in _panels(dashboard["panels"]) for target in panel["targets"]]


# -- CLI ---------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.monitoring.dashboards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("deploy/grafana/dashboards"), help="output directory")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for file_name, dashboard in all_dashboards().items():
        path = args.out / file_name
        text = render(dashboard)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python -m streams.monitoring.dashboards --out {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
