"""Prometheus and Alertmanager configuration in deploy/.

- promtool: the config and rule files are valid; the rule unit tests of
  deploy/prometheus/tests/ pass, and they cover every alert both firing and not firing.
- Every alert has a severity, English/Vietnamese text, and a runbook link that resolves to a
  section of docs/runbooks.md; thresholds live in the emc:config:* recording rules.
- amtool and a real alertmanager: alerts route by severity, and an agency's rate alerts are
  inhibited while it is silent or in maintenance.

promtool, amtool and prometheus-alertmanager come from the Debian packages prometheus and
prometheus-alertmanager (dev.py installs them; CI runs as root).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from streams.local.stack import free_port
from tests.support.paths import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RECORDING_RULES = PROMETHEUS_DIR / "rules" / "recording.yml"
ALERT_RULES = PROMETHEUS_DIR / "rules" / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"

SEVERITIES = {"page", "ticket", "info"}
RATE_ALERTS = {"EmcAgencyLowMonthlyRate", "EmcAgencyBelowTarget", "EmcAgencyDailyRateDrop"}

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None, reason="alertmanager not installed (Debian package prometheus-alertmanager)"
)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    # A guard against a hung promtool only: `test rules` is CPU-bound (about 20 s alone) and took
    # over 120 s beside another test process on a machine at load 20.
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=480)


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _recording_rules() -> list[dict]:
    groups = yaml.safe_load(RECORDING_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


ALERT_NAMES = sorted(rule["alert"] for rule in _alert_rules())


# -- promtool ----------------------------------------------------------------------------------

@needs_promtool
@pytest.mark.parametrize("config", [PROMETHEUS_CONFIG, PROMETHEUS_DIR / "prometheus-local.yml"], ids=lambda p: p.name)
def test_prometheus_config_and_its_rule_files_are_valid(config: Path) -> None:
    result = _run(PROMTOOL, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout  # rule_files resolve relative to the config


def test_the_local_config_scrapes_the_same_jobs_with_the_same_rules() -> None:
    deployed = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    local = yaml.safe_load((PROMETHEUS_DIR / "prometheus-local.yml").read_text(encoding="utf-8"))
    assert local["rule_files"] == deployed["rule_files"]
    assert [job["job_name"] for job in local["scrape_configs"]] == [job["job_name"] for job in deployed["scrape_configs"]]


@needs_promtool
def test_rule_files_are_valid() -> None:
    result = _run(PROMTOOL, "check", "rules", str(RECORDING_RULES), str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def rule_test_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """Runs every rule test file at once: promtool is single-threaded and months of hourly
    steps take seconds."""
    with ThreadPoolExecutor(max_workers=len(RULE_TESTS)) as pool:
        results = pool.map(lambda path: _run(PROMTOOL, "test", "rules", str(path)), RULE_TESTS)
        return {path.name: result for path, result in zip(RULE_TESTS, results)}


@needs_promtool
@pytest.mark.parametrize("test_file", [path.name for path in RULE_TESTS])
def test_rule_unit_tests_pass(rule_test_results: dict, test_file: str) -> None:
    result = rule_test_results[test_file]
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_test_cases() -> list[tuple[str, bool]]:
    """(alertname, fires?) of every alert_rule_test case in the rule test files."""
    cases = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((case["alertname"], bool(case.get("exp_alerts"))))
    return cases


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_is_tested_firing_and_not_firing(alertname: str) -> None:
    outcomes = {fires for name, fires in _alert_test_cases() if name == alertname}
    assert outcomes == {True, False}, f"{alertname}: rule tests cover {outcomes or 'nothing'}"


def test_rule_tests_only_name_existing_alerts() -> None:
    assert {name for name, _ in _alert_test_cases()} <= set(ALERT_NAMES)


# -- what every alert carries --------------------------------------------------------------------

def _github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6} +(.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {_github_anchor(heading) for heading in headings}


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_text_and_runbook(rule: dict) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    # English first, then Vietnamese after " / ".
    assert " / " in annotations["summary"] and " / " in annotations["description"]
    runbook = annotations["runbook_url"]
    assert runbook == f"docs/runbooks.md#{rule['alert'].lower()}"
    assert runbook.split("#")[1] in _runbook_anchors(), f"no section for {runbook} in docs/runbooks.md"


AGENCY_ALERTS = [rule for rule in _alert_rules() if "agency" in rule["expr"]]


def test_agency_alerts_are_recognised() -> None:
    assert len(AGENCY_ALERTS) == 7


@pytest.mark.parametrize("rule", AGENCY_ALERTS, ids=lambda rule: rule["alert"])
def test_agency_alert_names_the_agency_and_its_block(rule: dict) -> None:
    # The Vietnamese name is joined from emc_agency_info (via the emc:agency_info:max rule).
    assert re.search(r"\* on \(agency\) group_left \((block, )?name\)\s+emc:agency_info:max\s*$", rule["expr"])
    for text in (rule["annotations"]["summary"], rule["annotations"]["description"]):
        assert "$labels.name" in text and "$labels.agency" in text
    assert "$labels.block" in rule["annotations"]["description"]


def test_thresholds_are_recording_rule_constants() -> None:
    """Alert expressions hold no magic numbers: thresholds are emc:config:* rules."""
    constants = {rule["record"] for rule in _recording_rules() if rule["record"].startswith("emc:config:")}
    for rule in _alert_rules():
        expr = re.sub(r"\[[^\]]*\]", "", rule["expr"])  # range selectors like [15m]
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values
        numbers = set(re.findall(r"(?<![\w:.])\d+(?:\.\d+)?(?![\w.])", expr))
        assert numbers <= {"0", "1"}, f"{rule['alert']}: literal thresholds {numbers}"
        assert set(re.findall(r"emc:config:\w+", rule["expr"])) <= constants


def test_no_agency_code_is_hard_coded_in_rules() -> None:
    for path in (RECORDING_RULES, ALERT_RULES):
        assert not re.search(r'\bagency\s*=~?\s*"', path.read_text(encoding="utf-8")), path


# -- Alertmanager --------------------------------------------------------------------------------

@needs_amtool
def test_alertmanager_config_is_valid() -> None:
    result = _run(AMTOOL, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_routes_to_the_receiver_of_its_severity(rule: dict) -> None:
    severity = rule["labels"]["severity"]
    result = _run(AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                  f"alertname={rule['alert']}", f"severity={severity}", "block=province", "agency=T01")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"emc-{severity}"]


def test_alerts_are_grouped_by_alertname_and_block() -> None:
    route = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))["route"]
    assert set(route["group_by"]) == {"alertname", "block"}


def test_inhibition_rules_name_existing_alerts() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            match = re.fullmatch(r'alertname=~?"(.+)"', matcher)
            assert match, matcher
            assert set(match.group(1).split("|")) <= set(ALERT_NAMES), matcher


@pytest.fixture
def alertmanager_url(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={ALERTMANAGER_CONFIG}", f"--storage.path={tmp_path}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],  # no gossip port
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"alertmanager did not start: {process.stderr.read().decode() if process.stderr else ''}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@needs_alertmanager
def test_rate_alerts_are_inhibited_while_the_agency_is_silent_or_in_maintenance(alertmanager_url: str) -> None:
    def alert(name: str, agency: str, severity: str) -> dict:
        return {"labels": {"alertname": name, "agency": agency, "block": "province", "severity": severity}}

    sent = [
        alert("EmcAgencySilent", "T01", "page"),
        alert("EmcAgencyInMaintenance", "T46", "info"),
        *(alert(name, agency, "ticket") for name in sorted(RATE_ALERTS) for agency in ("T01", "T46", "T79")),
        alert("EmcAgencyNeverConnected", "T46", "ticket"),
    ]
    request = urllib.request.Request(f"{alertmanager_url}/api/v2/alerts", data=json.dumps(sent).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5)

    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/alerts", timeout=5) as response:
        received = json.load(response)
    inhibited = {(a["labels"]["alertname"], a["labels"]["agency"]) for a in received if a["status"]["inhibitedBy"]}
    assert len(received) == len(sent)
    assert inhibited == {(name, agency) for name in RATE_ALERTS for agency in ("T01", "T46")}
