"""The monitoring package against live components: a real `emc worker` on the Tansu broker,
a real `prometheus` scraping it with the project's recording and alert rules, and a real
Alertmanager with the project's routing, delivering to a webhook run by the test.

One stack per module (it takes a while to start): the tests share it and only read from it.

What is not the production configuration, and why (everything else is deploy/ as shipped):
- prometheus.yml: the scrape targets, rule paths and Alertmanager address point at this test's
  processes on free loopback ports; scrape and evaluation intervals are 1 s instead of 15 s.
- rules: a copy in which every alert's `for:` is 2 s (production: 5 min to 1 h) and the
  5-minute baseline group is evaluated every second, so alerts fire within a test.
  Expressions, thresholds (10 %, 30 dossiers, ...) and labels are untouched.
- alertmanager.yml: receivers' webhook URLs point at this test's webhook, group_wait is 1 s.
- One agency is declared in maintenance with `emc agency maintenance` on this test's control
  topic, as an operator would, so that the maintenance panel and inhibition have a subject.
- The cast's two procedures are imported with `emc catalogue import` on this test's catalogue
  topic, so that indicators 1 and 2 (the three toàn trình rates' panels) have values.
- The agency dashboard's "previous 7 days" baseline needs a week of history that a fresh
  Prometheus cannot have: the test writes that history (the recorded per-agency daily rate)
  into Prometheus' storage with `promtool tsdb create-blocks-from openmetrics` before start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.domain.dossier import MODES
from streams.domain.events import parse_event
from streams.domain.periods import WINDOWS, current_periods, today_local
from streams.domain.registry import Registry
from streams.errors import InvalidEvent
from streams.kafka.producer import EventProducer
from streams.local.demo import worker_environment
from streams.local.stack import RunningProcess, free_port, wait_for_port
from streams.monitoring.dashboards import agency_dashboard, all_panel_queries, national_dashboard
from streams.monitoring.dashboards_png import render_national_png
from streams.settings import Settings, load_settings
from tests.integration.conftest import WorkerProcess
from tests.support.events import rfc3339, wire_event
from tests.support.oracle import batch_counts
from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DEPLOY = REPO_ROOT / "deploy"
REGISTRY = Registry.load()
TODAY = today_local()
PROVINCES = [a for a in REGISTRY.valid_on(TODAY) if a.block == "province"]
MINISTRIES = [a for a in REGISTRY.valid_on(TODAY) if a.block == "ministry"]

# The cast: full_online / partial_online / offline resolved dossiers this month.
LOW = PROVINCES[0].code  # 2 / 20 / 18: 5 % of 40 resolved, under 10 % with >= 30 resolved -> alerts
HIGH = PROVINCES[1].code  # 32 / 8 / 0: 80 % -> no alert
SMALL = MINISTRIES[0].code  # 0 / 0 / 3: 0 %, but only 3 resolved (< 30) -> no alert
MID = MINISTRIES[1].code  # 30 / 0 / 5: 86 % -> no alert
SILENT = MINISTRIES[2].code  # one heartbeat two hours ago, nothing else -> silent
# 1 / 10 / 29: 2.5 %, alerts in Prometheus, but declared in maintenance (`emc agency
# maintenance`): Alertmanager holds its rate alert back.
MAINT = PROVINCES[3].code
CAST = {LOW: (2, 20, 18), HIGH: (32, 8, 0), SMALL: (0, 0, 3), MID: (30, 0, 5), MAINT: (1, 10, 29)}
# The recorded daily rate of the previous week, written into Prometheus before it starts.
HISTORY = {LOW: 0.6, HIGH: 0.85}

TEST_FOR = "2s"  # every alert's `for:` in the test copy of the rules


# -- processes ---------------------------------------------------------------------------------

def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"none of {names} is installed (python dev.py installs the Debian packages)")


def _start(name: str, argv: list[str], workdir: Path, port: int) -> RunningProcess:
    log_path = workdir / f"{name}.log"
    process = subprocess.Popen(argv, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, cwd=workdir)
    return RunningProcess(name, process, port, log_path)


def _get_json(url: str, params: dict[str, str] | None = None) -> Any:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# -- configuration derived from deploy/ --------------------------------------------------------

def rules_for_test(out_dir: Path) -> list[Path]:
    """deploy/prometheus/rules with every `for:` shortened and every group evaluated at the
    global (1 s) interval; nothing else changes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        for group in document["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = TEST_FOR
        target = out_dir / source.name
        target.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written



def prometheus_config(worker_ports: list[int], rule_files: list[Path], alertmanager_port: int,
                      prometheus_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml pointed at local processes (job names kept: the alert
    rules name them)."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in rule_files]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
    targets = {"emc-worker": [f"127.0.0.1:{port}" for port in worker_ports],
               "prometheus": [f"127.0.0.1:{prometheus_port}"]}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    return config


def alertmanager_config(webhook_port: int) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml delivering to a local webhook, without the 30 s
    group_wait."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            path = urllib.parse.urlparse(webhook["url"]).path
            webhook["url"] = f"http://127.0.0.1:{webhook_port}{path}"
    for route in [config["route"], *config["route"].get("routes", [])]:
        if "group_wait" in route:
            route["group_wait"] = "1s"
    return config


def history_openmetrics(history: dict[str, float], now: datetime) -> str:
    """The recorded day-window rate of each agency, every 10 minutes from 8 days to 1 day ago."""
    lines = ["# TYPE emc:agency_full_online_ratio:max gauge"]
    start, end = now - timedelta(days=8), now - timedelta(days=1)
    for agency, value in sorted(history.items()):
        block = REGISTRY.get(agency).block
        moment = start + timedelta(minutes=5)
        while moment <= end:
            lines.append(f'emc:agency_full_online_ratio:max{{agency="{agency}",block="{block}",window="day"}} '
                         f"{value} {moment.timestamp():.0f}")
            moment += timedelta(minutes=10)
    return "\n".join(lines) + "\n# EOF\n"


class _Webhook(ThreadingHTTPServer):
    """Records what Alertmanager delivers: (path, payload)."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)


# -- the events --------------------------------------------------------------------------------

def cast_messages(now: datetime) -> list[tuple[bytes | None, bytes]]:
    """Events dated now (so in every current window), heartbeats, and two dead letters."""
    at = rfc3339(now)
    events = []
    for agency, (full, partial, offline) in CAST.items():
        modes = ["full_online"] * full + ["partial_online"] * partial + ["offline"] * offline
        for n, mode in enumerate(modes):
            dossier = f"D-{n}"
            channel = "in_person" if mode == "offline" else "online"
            delivery = "online" if mode == "full_online" else "in_person"
            portal = {} if channel != "online" else {"portal": "national" if n % 2 else "agency"}
            events.append(wire_event(agency, f"{dossier}-r", dossier, "received", at, channel=channel,
                                 procedure_code="1.001", **portal))
            events.append(wire_event(agency, f"{dossier}-x", dossier, "result_returned", at, delivery=delivery))
        # One dossier still open: received, not resolved.
        events.append(wire_event(agency, "open-r", "OPEN", "received", at, channel="online", procedure_code="1.002"))
    events.append(wire_event(LOW, "hb-1", None, "heartbeat", at))
    events.append(wire_event(SILENT, "hb-old", None, "heartbeat", rfc3339(now - timedelta(hours=2))))
    messages = [(e["agency_code"].encode(), orjson.dumps(e)) for e in events]
    messages.append((LOW.encode(), b"{not json"))
    messages.append((b"ZZ99", orjson.dumps(wire_event("ZZ99", "u-1", None, "heartbeat", at))))
    return messages


def expected_counts(messages: list[tuple[bytes | None, bytes]], periods: dict[str, str]) -> dict:
    """(block, window) -> counts, block national included, by the batch computation."""
    valid = []
    for key, value in messages:
        try:
            event = parse_event(value, key)
        except InvalidEvent:  # the dead letters of the cast
            continue
        if event.agency_code in REGISTRY:
            valid.append(event)
    by_agency_period = batch_counts(valid)
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (agency, period), counts in by_agency_period.items():
        for window, current in periods.items():
            if period != current:
                continue
            for block in (REGISTRY.get(agency).block, "national"):
                for name, value in counts.items():
                    out[(block, window)][name] += value
            for name, value in counts.items():
                out[(agency, window)][name] += value
    return out


# -- the stack -----------------------------------------------------------------------------------

@dataclass
class Stack:
    settings: Settings
    worker: WorkerProcess
    prometheus: str  # base URL
    alertmanager: str
    webhook: _Webhook
    messages: list[tuple[bytes | None, bytes]]
    processes: list[RunningProcess] = field(default_factory=list)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = _get_json(f"{self.prometheus}/api/v1/query", {"query": expr})
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        return _get_json(f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]

    def wait(self, predicate: Any, timeout_s: float, what: str) -> Any:
        """wait_until, with the logs of the stack at the time of failure."""
        try:
            return wait_until(predicate, timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None

    def diagnostics(self) -> str:
        logs = [f"--- worker\n{self.worker.log_tail(20)}"]
        for process in self.processes:
            tail = process.log_path.read_text(errors="replace").splitlines()[-15:]
            logs.append(f"--- {process.name}\n" + "\n".join(tail))
        return "\n".join(logs)


@pytest.fixture(scope="module")
def stack(broker: RunningProcess, redis_process: RunningProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("monitoring")
    run = f"mon{int(time.time())}"
    settings = load_settings({
        "broker": f"kafka://127.0.0.1:{broker.port}",
        "redis_url": f"redis://127.0.0.1:{redis_process.port}/0",
        "metrics_port": free_port(), "metrics_host": "127.0.0.1",
        "data_dir": str(workdir / "worker"),
        "input_topic": f"emc.dossier-events.{run}", "dead_letter_topic": f"emc.dossier-events.dlq.{run}",
        "batch_topic": f"emc.dossier-batches.{run}", "control_topic": f"emc.agency-control.{run}",
        "catalogue_topic": f"emc.procedure-catalogue.{run}",
        "app_id": f"emc-{run}", "redis_prefix": f"emc:{run}:",
        "partitions": 2, "snapshot_interval_s": 0.5, "log_level": "info",
    }, environ={})
    prometheus_port, alertmanager_port, webhook_port = free_port(), free_port(), free_port()
    now = datetime.now(timezone.utc).replace(microsecond=0)

    webhook = _Webhook(webhook_port)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    processes: list[RunningProcess] = []
    worker = WorkerProcess(settings, workdir / "worker.log")
    try:
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(webhook_port)), encoding="utf-8")
        processes.append(_start("alertmanager", [
            _binary("alertmanager", "prometheus-alertmanager"), f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'alertmanager-data'}", f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=", "--log.level=warn"], workdir, alertmanager_port))

        rules = rules_for_test(workdir / "rules")
        config = prometheus_config([settings.metrics_port], rules, alertmanager_port, prometheus_port)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        (workdir / "history.om").write_text(history_openmetrics(HISTORY, now), encoding="utf-8")
        tsdb = workdir / "prometheus-data"
        subprocess.run([_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                        str(workdir / "history.om"), str(tsdb)], check=True, capture_output=True)
        processes.append(_start("prometheus", [
            _binary("prometheus"), f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"], workdir, prometheus_port))

        # The cast's procedures, as an agency exports them: 1.001 full online, 1.002 partial.
        catalogue = workdir / "tthc.csv"
        catalogue.write_text("code,name,agency,level,valid_from\n" + "".join(
            f"1.001,Cấp phiếu lý lịch tư pháp,{agency},full_online,2024-01-01\n"
            f"1.002,Cấp giấy phép xây dựng,{agency},partial_online,2024-01-01\n" for agency in CAST), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "streams.cli", "catalogue", "import", str(catalogue)],
                       env=worker_environment(settings), check=True, capture_output=True, timeout=60)
        worker.start()
        # As an operator declares it: through the control topic.
        subprocess.run([sys.executable, "-m", "streams.cli", "agency", "maintenance", MAINT,
                        "--until", rfc3339(now + timedelta(hours=2)), "--reason", "monitoring test"],
                       env=worker_environment(settings), check=True, capture_output=True, timeout=60)
        messages = cast_messages(now)
        with EventProducer(settings) as producer:
            for key, value in messages:
                producer.send(key, value)
            producer.flush()

        stack = Stack(settings, worker, f"http://127.0.0.1:{prometheus_port}",
                      f"http://127.0.0.1:{alertmanager_port}", webhook, messages, processes)
        for process in processes:
            wait_for_port(process.port, 30, process.process, process.name)
        wait_until(lambda: _ready(f"{stack.prometheus}/-/ready") and _ready(f"{stack.alertmanager}/-/ready"),
                   60, "prometheus and alertmanager ready")
        # Everything sent has been applied and scraped: the resolved dossiers of the cast.
        resolved = sum(sum(modes) for modes in CAST.values())
        stack.wait(lambda: stack.value('sum(emc:agency_dossiers:max{mode="all", window="year"})') == resolved,
                   120, f"{resolved} resolved dossiers in Prometheus")
        yield stack
    finally:
        worker.discard()
        for process in processes:
            process.stop()
        webhook.shutdown()
        webhook.server_close()


# -- the tests -----------------------------------------------------------------------------------

def test_recording_rules_match_the_batch_computation(stack: Stack) -> None:
    periods = current_periods()
    expected = expected_counts(stack.messages, periods)
    want: dict[str, float] = {}
    for window in WINDOWS:
        for block in ("ministry", "province", "national"):
            counts = expected[(block, window)]
            for mode in (*MODES, "all"):
                want[f'emc:block_dossiers:sum{{block="{block}", mode="{mode}", window="{window}"}}'] = \
                    counts.get("resolved" if mode == "all" else mode, 0)
            want[f'emc:block_full_online_ratio:ratio{{block="{block}", window="{window}"}}'] = \
                counts["full_online"] / counts["resolved"]
        for agency in CAST:
            counts = expected[(agency, window)]
            want[f'emc:agency_full_online_ratio:max{{agency="{agency}", window="{window}"}}'] = \
                counts["full_online"] / counts["resolved"]
            want[f'emc:agency_dossiers:max{{agency="{agency}", mode="all", window="{window}"}}'] = counts["resolved"]
    got: dict[str, float | None] = {}

    def settled() -> bool:
        # Rule groups are evaluated independently: block sums may trail the agency series by
        # an evaluation or two.
        got.update((expr, stack.value(expr)) for expr in want)
        return all(got[expr] == pytest.approx(value, rel=1e-12) for expr, value in want.items())

    try:
        wait_until(settled, 30, "the recording rules")
    except AssertionError:
        wrong = {expr: (got.get(expr), value) for expr, value in want.items() if got.get(expr) != pytest.approx(value)}
        pytest.fail(f"recording rules (got, expected): {wrong}")
    # An agency that resolved nothing has no rate (undefined, not 0) but does have its zeros.
    assert stack.value(f'emc:agency_full_online_ratio:max{{agency="{SILENT}", window="month"}}') is None
    assert stack.value(f'emc:agency_dossiers:max{{agency="{SILENT}", mode="all", window="month"}}') == 0
    # The week before, as written into Prometheus' storage.
    for agency, level in HISTORY.items():
        baseline = f'emc:agency_daily_full_online_ratio:avg_7d{{agency="{agency}"}}'
        got = wait_until(lambda expr=baseline: stack.value(expr), 30, f"the 7-day baseline of {agency}")
        assert got == pytest.approx(level, rel=1e-12)


def _firing(stack: Stack, alertname: str) -> dict[str, dict[str, Any]]:
    """agency -> alert, for the alerts of that name in any state (pending or firing)."""
    return {a["labels"].get("agency", ""): a for a in stack.alerts() if a["labels"]["alertname"] == alertname}


def test_low_rate_alert_fires_in_prometheus_and_reaches_alertmanager(stack: Stack) -> None:
    def low_firing() -> dict[str, dict[str, Any]]:
        alerts = _firing(stack, "EmcAgencyLowMonthlyRate")
        return alerts if alerts.get(LOW, {}).get("state") == "firing" else {}

    alerts = stack.wait(low_firing, 60, f"EmcAgencyLowMonthlyRate firing for {LOW}")
    low = alerts[LOW]
    name = REGISTRY.get(LOW).name
    assert low["labels"]["severity"] == "ticket"
    assert low["labels"]["block"] == "province"
    assert low["labels"]["name"] == name
    counts = CAST[LOW]
    assert float(low["value"]) == pytest.approx(counts[0] / sum(counts))
    assert name in low["annotations"]["summary"] and LOW in low["annotations"]["summary"]
    assert "10%" in low["annotations"]["description"]
    assert low["annotations"]["runbook_url"] == "docs/runbooks.md#emcagencylowmonthlyrate"
    # Above the threshold, or under the minimum volume, or no rate: no alert, not even pending.
    # (MAINT's rate is low too: its alert fires here and is held back by Alertmanager.)
    assert set(alerts) == {LOW, MAINT}, sorted(alerts)

    # The sharp drop against the agency's own previous week (60 % -> 5 %), not for HIGH (85 % -> 80 %).
    drop = stack.wait(lambda: _firing(stack, "EmcAgencyDailyRateDrop").get(LOW), 60, "EmcAgencyDailyRateDrop")
    assert drop["labels"]["severity"] == "page"
    assert set(_firing(stack, "EmcAgencyDailyRateDrop")) == {LOW}
    # Silence: a heartbeat two hours ago; the agencies that sent anything today are not silent.
    silent = stack.wait(lambda: _firing(stack, "EmcAgencySilent").get(SILENT), 60, "EmcAgencySilent")
    assert silent["labels"]["block"] == "ministry"
    assert set(_firing(stack, "EmcAgencySilent")) == {SILENT}
    never = _firing(stack, "EmcAgencyNeverConnected")
    assert not never.keys() & {*CAST, SILENT}
    assert set(_firing(stack, "EmcAgencyInMaintenance")) == {MAINT}
    assert PROVINCES[2].code in never

    # Alertmanager has it, routed by severity to the ticket receiver ...
    def in_alertmanager() -> list[dict[str, Any]]:
        return [a for a in _get_json(f"{stack.alertmanager}/api/v2/alerts",
                                     {"filter": 'alertname="EmcAgencyLowMonthlyRate"'})
                if a["labels"].get("agency") == LOW]

    (managed,) = stack.wait(in_alertmanager, 60, "the alert in Alertmanager")
    assert managed["status"]["state"] == "active"
    assert [r["name"] for r in managed["receivers"]] == ["emc-ticket"]
    assert managed["annotations"]["summary"] == low["annotations"]["summary"]
    # The agency in maintenance: its rate alert is in Alertmanager, inhibited, not delivered.
    def inhibited() -> list[dict[str, Any]]:
        return [a for a in _get_json(f"{stack.alertmanager}/api/v2/alerts",
                                     {"filter": 'alertname="EmcAgencyLowMonthlyRate"'})
                if a["labels"].get("agency") == MAINT and a["status"]["inhibitedBy"]]

    (held,) = stack.wait(inhibited, 60, f"the inhibited alert of {MAINT}")
    assert held["status"]["state"] == "suppressed"
    # ... and delivered there, grouped by alert name and block.
    def delivered() -> list[dict[str, Any]]:
        return [payload for path, payload in stack.webhook.received
                if path == "/emc/ticket" and payload["groupLabels"].get("alertname") == "EmcAgencyLowMonthlyRate"]

    payload = stack.wait(delivered, 60, "the webhook notification")[0]
    assert payload["groupLabels"] == {"alertname": "EmcAgencyLowMonthlyRate", "block": "province"}
    assert [a["labels"]["agency"] for a in payload["alerts"]] == [LOW]  # not MAINT
    pages = [payload for path, payload in stack.webhook.received if path == "/emc/page"]
    assert all(p["groupLabels"]["alertname"] != "EmcAgencyLowMonthlyRate" for p in pages)


def _dashboard_queries() -> list[tuple[str, str, str]]:
    queries = []
    for window in WINDOWS:
        for title, expr in all_panel_queries(national_dashboard(), {"window": window}):
            queries.append(("national", title, expr))
        for title, expr in all_panel_queries(agency_dashboard(), {"window": window, "agency": LOW}):
            queries.append(("agency", title, expr))
    return list(dict.fromkeys(queries))


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    queries = _dashboard_queries()
    assert len(queries) > 40
    empty: list[tuple[str, str, str]] = []

    def all_answer() -> bool:
        empty[:] = [q for q in queries if not stack.query(q[2])]
        return not empty

    try:
        wait_until(all_answer, 60, "every panel query to return data")
    except AssertionError:
        pytest.fail("panel queries without data:\n" + "\n".join(f"{d}: {t}: {e}" for d, t, e in empty))
    # The lists show who they should.
    panels = {title: expr for _, title, expr in queries}
    assert {r["metric"]["agency"] for r in stack.query(panels["Agencies in maintenance"])} == {MAINT}
    assert {r["metric"]["agency"] for r in stack.query(panels["Silent agencies: time since last event or heartbeat"])} \
        == {SILENT}
    assert {r["metric"]["agency"] for r in stack.query(panels["Agencies under 10 % (month)"])} == {LOW, SMALL, MAINT}
    # The three toàn trình rates of the provinces (LOW, HIGH, MAINT): each has 1.001 (full
    # online, received online) and 1.002 (partial) in force and with dossiers; 35 of 120
    # resolved dossiers fully online.
    provinces = {r["metric"]["indicator"]: float(r["value"][1])
                 for r in stack.query(panels["Three full-online rates by block (month)"]) if r["metric"]["block"] == "province"}
    assert provinces == {"1. procedures": 0.5, "2. procedures used": 0.5, "3. dossiers": pytest.approx(35 / 120)}
    by_agency = stack.query(panels["Three full-online rates by agency (month)"])
    assert sorted((r["metric"]["agency"], r["metric"]["indicator"]) for r in by_agency) == sorted(
        (agency, title) for agency in CAST for title in ("1. procedures", "2. procedures used", "3. dossiers"))


def test_national_dashboard_renders_as_png(stack: Stack, tmp_path: Path) -> None:
    import matplotlib.image

    out = tmp_path / "national.png"
    render_national_png(stack.prometheus, out, window="month", lookback=timedelta(minutes=5))
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # not blank
