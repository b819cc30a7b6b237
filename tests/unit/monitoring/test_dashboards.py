"""Grafana dashboards as code (streams/monitoring/dashboards.py -> deploy/grafana/dashboards/*.json).

Grafana cannot run here, so the dashboards are checked as data: the committed JSON is what
the generator writes, every panel queries the provisioned datasource, and every query parses
(promtool) and returns data when the recording rules run over series shaped like two
workers' /metrics (promtool test rules). The live test runs the same queries against a real
Prometheus scraping a real worker.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.monitoring import dashboards
from streams.monitoring.dashboards import DATASOURCE, all_dashboards, all_panel_queries, main, render
from tests.support.paths import REPO_ROOT

DASHBOARD_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE_PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
RECORDING_RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"
VARIABLES = {"agency": "T01", "window": "month"}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def _panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


@pytest.mark.parametrize("file_name", sorted(all_dashboards()))
def test_committed_dashboard_is_what_the_generator_writes(file_name: str) -> None:
    committed = DASHBOARD_DIR / file_name
    assert committed.exists(), f"{committed} missing: run python -m streams.monitoring.dashboards --out deploy/grafana/dashboards"
    assert committed.read_text(encoding="utf-8") == render(all_dashboards()[file_name]), (
        f"{committed} is stale: run python -m streams.monitoring.dashboards --out deploy/grafana/dashboards"
    )


def test_cli_writes_the_dashboards_and_check_detects_stale_files(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--check"]) == 1  # nothing written yet
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(all_dashboards())
    assert main(["--out", str(tmp_path), "--check"]) == 0
    national = tmp_path / "emc-national.json"
    national.write_text(national.read_text(encoding="utf-8").replace("EMC", "EMX"), encoding="utf-8")
    assert main(["--out", str(tmp_path), "--check"]) == 1


def test_dashboard_files_are_json_with_unique_uids() -> None:
    loaded = [json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8")) for name in all_dashboards()]
    uids = [d["uid"] for d in loaded]
    assert len(set(uids)) == len(uids) and all(uids)


@pytest.mark.parametrize("dashboard", all_dashboards().values(), ids=lambda d: d["uid"])
def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for cell in itertools.product(range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])):
            assert cell not in cells, f"{panel['title']!r} overlaps {cells[cell]!r}"
            cells[cell] = panel["title"]


@pytest.mark.parametrize("dashboard", all_dashboards().values(), ids=lambda d: d["uid"])
def test_every_panel_queries_the_provisioned_datasource(dashboard: dict) -> None:
    provisioned = yaml.safe_load(DATASOURCE_PROVISIONING.read_text(encoding="utf-8"))["datasources"]
    assert [(d["type"], d["uid"]) for d in provisioned] == [(DATASOURCE["type"], DATASOURCE["uid"])]
    for panel in _panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_agency_dashboard_has_an_agency_variable() -> None:
    variables = {v["name"]: v for v in all_dashboards()["emc-agency.json"]["templating"]["list"]}
    assert variables["agency"]["query"]["query"] == "label_values(emc_dossiers, agency)"
    assert variables["agency"]["datasource"] == DATASOURCE
    assert [o["value"] for o in variables["window"]["options"]] == ["day", "month", "quarter", "year"]


def test_national_dashboard_shows_what_the_issue_asks_for() -> None:
    queries = " ".join(expr for _, expr in all_panel_queries(all_dashboards()["emc-national.json"], VARIABLES))
    for needle in ('block="national"', "emc:block_target_ratio:max", 'topk(10', 'bottomk(10', '< 0.1',
                   'status="silent"', 'status="never"', "emc:events:rate5m", 'result="dead_letter"',
                   "emc:consumer_lag_messages:max"):
        assert needle in queries, needle


def test_all_panel_queries_substitutes_every_variable() -> None:
    for dashboard in all_dashboards().values():
        queries = all_panel_queries(dashboard, VARIABLES)
        assert len(queries) == sum(len(panel["targets"]) for panel in _panels(dashboard))
        for title, expr in queries:
            assert "$" not in title and "$" not in expr.replace('"$1"', ""), (title, expr)
    assert ("Full-online rate (quarter)", 'emc:agency_full_online_ratio:max{agency="T46", window="quarter"}') in \
        all_panel_queries(all_dashboards()["emc-agency.json"], {"agency": "T46", "window": "quarter"})
    with pytest.raises(KeyError, match="agency"):
        all_panel_queries(all_dashboards()["emc-agency.json"], {"window": "month"})


def _all_queries() -> list[str]:
    """Every distinct query of both dashboards, for every window."""
    queries = {
        expr
        for dashboard in all_dashboards().values()
        for window in ("day", "month", "quarter", "year")
        for _, expr in all_panel_queries(dashboard, {"agency": "T01", "window": window})
    }
    return sorted(queries)


@needs_promtool
def test_every_query_parses(tmp_path: Path) -> None:
    """promtool is the PromQL parser at hand: each query becomes a recording rule."""
    rules = {"groups": [{"name": "dashboard-queries",
                         "rules": [{"record": f"dashboard:query_{i}", "expr": expr}
                                   for i, expr in enumerate(_all_queries())]}]}
    rule_file = tmp_path / "queries.yml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    result = subprocess.run([PROMTOOL, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- every query returns data over series shaped like two workers' /metrics ----------------------

STEP_MINUTES = 2
# The daily baseline averages the 7 days before the last 24 h: evaluate just past one day.
EVAL_MINUTES = 24 * 60 + 2 * STEP_MINUTES
SAMPLES = EVAL_MINUTES // STEP_MINUTES + 1

# code, block, name, worker, status, maintenance, full-online ratio (None: never sent anything)
AGENCIES = [
    ("T01", "province", "Hà Nội", 1, "connected", 0, 0.05),
    ("T46", "province", "Huế", 2, "connected", 0, 0.8),
    ("T37-2025", "province", "Ninh Bình", 2, "never", 0, None),
    ("BCT", "ministry", "Bộ Công Thương", 1, "connected", 0, 0.9),
    ("BTP", "ministry", "Bộ Tư pháp", 2, "silent", 0, 0.3),
    ("BNV", "ministry", "Bộ Nội vụ", 1, "maintenance", 1, 0.6),
]


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    label_text = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{label_text}}}", "values": values}


def _constant(value: float) -> str:
    return f"{value}x{SAMPLES - 1}"


def _worker_series() -> list[dict[str, str]]:
    """What two workers export (contract section 5), as promtool input series."""
    series = []
    for code, block, name, worker, status, maintenance, ratio in AGENCIES:
        target = {"instance": f"emc-worker-{worker}:9108", "job": "emc-worker"}
        resolved = 0 if ratio is None else 100
        full_online = round(resolved * (ratio or 0))
        counts = {"full_online": full_online, "partial_online": resolved - full_online, "offline": 0,
                  "unclassified": 0, "all": resolved}
        for window in ("day", "month", "quarter", "year"):
            for mode, count in counts.items():
                series.append(_series("emc_dossiers", {"agency": code, "block": block, "mode": mode,
                                                       "window": window, **target}, _constant(count)))
            if ratio is not None:
                series.append(_series("emc_full_online_ratio", {"agency": code, "block": block, "window": window,
                                                                **target}, _constant(ratio)))
                for indicator in ("online_received", "full_online_procedures", "full_online_procedures_used"):
                    series.append(_series("emc_indicator_ratio", {"agency": code, "block": block,
                                                                  "indicator": indicator, "window": window,
                                                                  **target}, _constant(ratio)))
        series.append(_series("emc_agency_info", {"agency": code, "block": block, "name": name, **target},
                              _constant(1)))
        series.append(_series("emc_agency_maintenance", {"agency": code, **target}, _constant(maintenance)))
        for each in ("connected", "silent", "maintenance", "never"):
            series.append(_series("emc_agency_status", {"agency": code, "block": block, "status": each, **target},
                                  _constant(1 if each == status else 0)))
        if ratio is not None:
            # A connected agency's last event is "now"; a silent one's is the start of the test.
            last_event = f"0+{STEP_MINUTES * 60}x{SAMPLES - 1}" if status == "connected" else _constant(0)
            series.append(_series("emc_agency_last_event_timestamp_seconds", {"agency": code, **target}, last_event))
            series.append(_series("emc_agency_last_heartbeat_timestamp_seconds", {"agency": code, **target},
                                  last_event))
    leader = {"instance": "emc-worker-1:9108", "job": "emc-worker"}
    for scope, value in (("national", 0.8), ("ministry", 0.85), ("province", 0.7)):
        for window in ("day", "month", "quarter", "year"):
            series.append(_series("emc_target_ratio", {"scope": scope, "window": window, **leader}, _constant(value)))
            for indicator in ("on_time", "full_online_procedures", "full_online_procedures_used"):
                series.append(_series("emc_block_indicator_ratio", {"block": scope, "indicator": indicator,
                                                                    "window": window, **leader}, _constant(value)))
    for worker in (1, 2):
        target = {"instance": f"emc-worker-{worker}:9108", "job": "emc-worker"}
        series.append(_series("up", target, _constant(1)))
        series.append(_series("emc_worker_info", {"worker": f"emc-worker-{worker}", **target}, _constant(1)))
        series.append(_series("emc_consumer_lag_messages", {"topic": "emc.dossier-events.v1",
                                                            "partition": str(worker - 1), **target}, _constant(42)))
        for event_type, result, per_step in (("received", "applied", 600), ("received", "duplicate", 6),
                                             ("unknown", "dead_letter", 2)):
            series.append(_series("emc_events_total", {"type": event_type, "result": result, **target},
                                  f"0+{per_step}x{SAMPLES - 1}"))
    return series


@needs_promtool
def test_every_query_returns_data_over_worker_shaped_series(tmp_path: Path) -> None:
    recording_groups = [g["name"] for g in yaml.safe_load(RECORDING_RULES.read_text(encoding="utf-8"))["groups"]]
    checks = [{"expr": f"count({expr}) > bool 0", "eval_time": f"{EVAL_MINUTES}m",
               "exp_samples": [{"labels": "{}", "value": 1}]} for expr in _all_queries()]
    test_file = {
        "rule_files": [str(RECORDING_RULES)],
        "evaluation_interval": f"{STEP_MINUTES}m",
        "group_eval_order": recording_groups,
        "tests": [{"name": "dashboard queries", "interval": f"{STEP_MINUTES}m",
                   "input_series": _worker_series(), "promql_expr_test": checks}],
    }
    path = tmp_path / "dashboard_queries_test.yml"
    path.write_text(yaml.safe_dump(test_file, allow_unicode=True, width=1000), encoding="utf-8")
    result = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    # promtool prints each failing expression with what it got (nil = no data).
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_gauges_show_the_2025_targets() -> None:
    assert dashboards.TARGETS_2025 == {"national": 0.80, "ministry": 0.85, "province": 0.70}


def test_worker_shaped_series_have_the_names_and_labels_the_worker_exports() -> None:
    """Keeps the series above honest: each is a metric the worker's collector exports, with the
    same label names (Prometheus adds instance and job)."""
    from prometheus_client import CollectorRegistry

    from streams.sinks.metrics import AgencyView, MetricsView, create_metrics

    metrics = create_metrics(CollectorRegistry())
    counts = {"resolved": 2, "full_online": 1, "received": 2, "received_online": 1, "on_time": 1, "late": 1}
    metrics.collector.view = MetricsView(
        agencies=(AgencyView(code="T01", block="province", name="Hà Nội", status="connected", maintenance=False,
                             last_event_us=1_000_000, last_heartbeat_us=2_000_000,
                             counts_by_window={window: counts for window in ("day", "month", "quarter", "year")}),),
        block_counts_by_window={("national", "month"): counts},
        targets={("national", "month"): 0.8},
        consumer_lag={("emc.dossier-events.v1", 0): 1}, state_lag={0: 1},
        worker="emc-worker-1",
    )
    metrics.events.labels(type="received", result="applied").inc()
    exported = {(sample.name, frozenset(sample.labels)) for family in metrics.registry.collect()
                for sample in family.samples}
    for series in _worker_series():
        name = series["series"].split("{")[0]
        if name == "up":  # Prometheus' own
            continue
        label_names = frozenset(re.findall(r'(\w+)="', series["series"])) - {"instance", "job"}
        assert (name, label_names) in exported, series["series"]


def test_png_tables_label_agency_rows_by_name_and_other_rows_by_their_labels() -> None:
    from streams.monitoring.dashboards_png import _row_label

    assert _row_label({"agency": "T46", "name": "Huế", "block": "province"}) == "Huế (T46)"
    assert _row_label({"agency": "T46"}) == "T46 (T46)"
    assert _row_label({"block": "province", "indicator": "on_time", "window": "month", "job": "emc"}) == "province · on_time"


def test_png_matrix_of_many_agencies_draws_a_group_per_agency_and_counts_the_rest() -> None:
    """The per-agency table of the three toàn trình rates: a group of three bars per agency,
    as many agencies as the panel shows, then how many more (a bar per agency in each of the
    three groups would be a legend of 50 names)."""
    from matplotlib.figure import Figure

    from streams.monitoring.dashboards_png import _matrix

    options = {"rowField": "name", "columnField": "indicator"}
    rates = ("1. procedures", "2. procedures used", "3. dossiers")
    rows = [({"name": f"Tỉnh {n:02d}", "indicator": rate}, 0.1 * (n % 10)) for n in range(12) for rate in rates]
    ax = Figure().add_subplot()
    _matrix(ax, options, "percentunit", rows, room=5)
    assert len(ax.patches) == 5 * 3
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"Tỉnh {n:02d}" for n in range(5)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(rates)
    assert any(t.get_text().startswith("... and 7 more") for t in ax.texts)
    few = Figure().add_subplot()  # a row per block: a group per rate, a bar per block, all shown
    _matrix(few, {"rowField": "block", "columnField": "indicator"}, "percentunit",
            [({"block": b, "indicator": r}, 0.5) for b in ("ministry", "national", "province") for r in rates], room=5)
    assert len(few.patches) == 9 and [t.get_text() for t in few.get_xticklabels()] == list(rates)
