"""docs/contract.md names everything user-visible that the code has.

The lists come from the code, never from a copy: the metric families the worker's
Prometheus registry exports (plus any metric constructor in `streams/`), the Redis key
families of the key-name owners (every `*Keys` class, plus any `{prefix}...` key spelled
elsewhere), the commands of the real argparse parser, and the `EMC_*` settings. A metric,
key family, command or variable added anywhere in the code fails this test until the
contract documents it; the failure says what to add and where.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

import streams
from streams.cli.main import build_parser
from streams.settings import ENV_VARS, load_settings
from tests.unit.docs.markdown import CONTRACT, REPO_ROOT, inline_code

PREFIX = "emc:v1:"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_SOURCES = sorted((REPO_ROOT / "streams").rglob("*.py"))
# Modules the scan must not import: they draw charts (matplotlib) and are not the worker.
_NOT_IMPORTED = ("streams.monitoring.dashboards_png",)


def _contract_code() -> list[str]:
    return inline_code(CONTRACT)


def _where(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# -- metrics ---------------------------------------------------------------------------------


def _exposed_name(name: str, kind: str) -> str:
    # prometheus_client names a counter family without `_total` and an info family without `_info`.
    return {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)


def metrics_of_the_worker(tmp_path: Path) -> dict[str, str]:
    """exposed metric name -> where it comes from, from the registry a real worker builds."""
    from streams.worker.app import build_worker

    registry = CollectorRegistry()
    settings = load_settings({"data_dir": str(tmp_path / "data")}, environ={})
    build_worker(settings, metrics_registry=registry)
    return {
        _exposed_name(family.name, family.type): f"the worker's /metrics registry ({family.type})"
        for family in registry.collect()
    }


_METRIC_CONSTRUCTOR = re.compile(
    r"\b(Gauge|Counter|Histogram|Summary|Info|Enum|GaugeMetricFamily|CounterMetricFamily|"
    r"HistogramMetricFamily|SummaryMetricFamily|InfoMetricFamily|StateSetMetricFamily)\(\s*[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']"
)


def metrics_in_the_source() -> dict[str, str]:
    """Metric names passed to a prometheus_client constructor anywhere in streams/."""
    found: dict[str, str] = {}
    for path in _SOURCES:
        for kind, name in _METRIC_CONSTRUCTOR.findall(path.read_text(encoding="utf-8")):
            if kind in ("Counter", "CounterMetricFamily"):
                name = name if name.endswith("_total") else f"{name}_total"
            elif kind in ("Info", "InfoMetricFamily"):
                name = f"{name}_info"
            found.setdefault(name, f"{kind}(...) in {_where(path)}")
    return found


def test_every_metric_is_in_the_contract(tmp_path: Path) -> None:
    metrics = {**metrics_in_the_source(), **metrics_of_the_worker(tmp_path)}
    assert "emc_dossiers" in metrics and "emc_events_total" in metrics, "the metric lists were not derived"
    documented = set(_contract_code())
    missing = {name: origin for name, origin in metrics.items() if name not in documented}
    assert not missing, "docs/contract.md does not document these metrics; add a row for each to the table of " \
        "section 5.2 (Prometheus metrics), with its type and labels:\n" + "\n".join(
            f"  `{name}`  (from {origin})" for name, origin in sorted(missing.items()))


# -- Redis key families ----------------------------------------------------------------------


def _key_owner_classes() -> list[type]:
    """Every class named `*Keys` in streams/ that builds key names from a prefix."""
    classes: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(streams.__path__, "streams."):
        if module_info.name in _NOT_IMPORTED or module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and name.endswith("Keys") and value.__module__ == module.__name__:
                if "prefix" in inspect.signature(value).parameters:
                    classes[f"{value.__module__}.{name}"] = value
    return list(classes.values())


def _call_variants(function: object) -> list[tuple[tuple, dict]]:
    """Arguments that make a key method show its shape: every parameter as `{name}`, and,
    when some have defaults, the required ones only (so `ranking(view=AS_WAS)` and
    `ranking(view={view})` both show)."""
    parameters = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    every = {p.name: "{" + p.name + "}" for p in parameters}
    variants = [((), every)]
    if any(p.default is not inspect.Parameter.empty for p in parameters):
        variants.append(((), {p.name: "{" + p.name + "}" for p in parameters if p.default is inspect.Parameter.empty}))
    return variants


def key_families_of_the_owners() -> dict[str, str]:
    """normalised key (prefix dropped, placeholders `{}`) -> an example and its owner."""
    families: dict[str, str] = {}
    for cls in _key_owner_classes():
        keys = cls(PREFIX)
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or name == "prefix":
                continue
            if isinstance(member, property):
                values = [getattr(keys, name)]
            elif inspect.isfunction(member):
                values = [getattr(keys, name)(*args, **kwargs) for args, kwargs in _call_variants(member)]
            else:
                continue
            for value in values:
                if isinstance(value, str) and value.startswith(PREFIX):
                    families.setdefault(_normalised(value[len(PREFIX):]), f"`{value}`  ({cls.__qualname__}.{name})")
    return families


_KEY_IN_SOURCE = re.compile(r"prefix\}([a-z][a-z0-9_.\-]*(?::(?:\{[^{}]*\}|[a-z0-9_.\-]+))*)")


def key_families_in_the_source() -> dict[str, str]:
    """Keys spelled as `{...prefix}name...` anywhere in streams/ (one owner should spell them,
    but a key is user-visible wherever it is spelled)."""
    families: dict[str, str] = {}
    for path in _SOURCES:
        for match in _KEY_IN_SOURCE.finditer(path.read_text(encoding="utf-8")):
            families.setdefault(_normalised(match.group(1)), f"`{PREFIX}{match.group(1)}`  (in {_where(path)})")
    return families


def _normalised(key: str) -> str:
    return _PLACEHOLDER.sub("{}", key)


def documented_key_families() -> set[str]:
    return {_normalised(code[len(PREFIX):]) for code in _contract_code() if code.startswith(PREFIX)}


def test_every_redis_key_family_is_in_the_contract() -> None:
    families = {**key_families_in_the_source(), **key_families_of_the_owners()}
    assert {"agency:{}:{}", "agencies"} <= set(families), f"the key lists were not derived: {sorted(families)}"
    documented = documented_key_families()
    missing = {family: example for family, example in families.items() if family not in documented}
    assert not missing, "docs/contract.md does not document these Redis key families; add a row for each to the " \
        "table of section 5.1 (Redis keys), spelled with the `emc:v1:` prefix and `{...}` placeholders:\n" + \
        "\n".join(f"  {example}" for example in sorted(missing.values()))


# -- commands --------------------------------------------------------------------------------


def cli_commands(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ("emc",)) -> list[str]:
    """Every leaf command of the real parser, as typed: `emc agency maintenance`."""
    parser = parser or build_parser()
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        return [" ".join(path)]
    return [command for action in subcommands for name, sub in action.choices.items()
            for command in cli_commands(sub, (*path, name))]


def test_every_cli_command_is_in_the_contract() -> None:
    commands = cli_commands()
    assert "emc worker" in commands and "emc targets set" in commands, f"the command list was not derived: {commands}"
    spans = _contract_code()
    missing = [c for c in commands if not any(s == c or s.startswith(c + " ") for s in spans)]
    assert not missing, "docs/contract.md does not document these commands; add a row for each to the command " \
        "table of section 6, as inline code starting with the command (e.g. `emc targets set AGENCY PERIOD RATIO`):\n" + \
        "\n".join(f"  `{c}`" for c in missing)


# -- settings --------------------------------------------------------------------------------

_ENV_IN_SOURCE = re.compile(r"[\"'](EMC_[A-Z0-9_]+)[\"']")


def test_every_environment_variable_is_in_the_contract() -> None:
    variables = {name: "streams/settings.py ENV_VARS" for name in ENV_VARS.values()}
    for path in _SOURCES:
        for name in _ENV_IN_SOURCE.findall(path.read_text(encoding="utf-8")):
            variables.setdefault(name, _where(path))
    documented = set(_contract_code())
    missing = {name: origin for name, origin in variables.items() if name not in documented}
    assert not missing, "docs/contract.md does not document these environment variables; add a row for each to " \
        "the settings table of section 6:\n" + "\n".join(f"  `{n}`  (from {o})" for n, o in sorted(missing.items()))


# -- the checks can fail ---------------------------------------------------------------------


def test_the_normalisation_tells_key_families_apart() -> None:
    assert _normalised("agency:{code}:{period}") == _normalised("agency:{agency}:{period}")
    assert _normalised("ranking:{block}:{period}") != _normalised("ranking-restated:{block}:{period}")
    assert _normalised("targets:{period}") != _normalised("target-periods")


# -- event schema, dead-letter reasons and headers --------------------------------------------

_SCHEMAS = REPO_ROOT / "schemas"


def _schema_words(schema: dict) -> set[str]:
    """Property names and string enum/const values of a JSON Schema, at any depth."""
    words: set[str] = set()
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            words.update(node.get("properties", {}))
            words.update(v for v in node.get("enum", []) if isinstance(v, str))
            if isinstance(node.get("const"), str):
                words.add(node["const"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return words


def test_every_field_and_value_of_the_record_schemas_is_in_the_contract() -> None:
    import json

    documented = set(_contract_code())
    missing = []
    for name in ("dossier-event.v1.json", "agency-control.v1.json"):
        words = _schema_words(json.loads((_SCHEMAS / name).read_text(encoding="utf-8")))
        assert "event_id" in words or "kind" in words, f"schemas/{name} not read"
        missing += [f"  `{word}`  (schemas/{name})" for word in sorted(words - documented)]
    assert not missing, "docs/contract.md does not name these schema fields or values; describe each in " \
        "section 1.2 (events) or 7 (control records):\n" + "\n".join(missing)


_REASON = re.compile(r"Invalid\w*\(\s*[\"']([a-z_]+)[\"']")
_HEADER = re.compile(r"[\"'](emc-[a-z0-9-]+)[\"']")


def test_every_dead_letter_reason_and_header_is_in_the_contract() -> None:
    found: dict[str, str] = {}
    for path in _SOURCES:
        if path.is_relative_to(REPO_ROOT / "streams" / "monitoring"):
            continue  # dashboard uids and job names, not headers
        text = path.read_text(encoding="utf-8")
        for reason in _REASON.findall(text):
            found.setdefault(reason, f"a dead-letter reason raised in {_where(path)}")
        for header in _HEADER.findall(text):
            found.setdefault(header, f"a Kafka header named in {_where(path)}")
    assert {"schema", "unknown_agency", "emc-reason"} <= set(found), f"the lists were not derived: {sorted(found)}"
    documented = set(_contract_code())
    missing = {word: origin for word, origin in found.items() if word not in documented}
    assert not missing, "docs/contract.md does not name these; add each to section 1.4 (dead letters) or " \
        "1.3 (signatures):\n" + "\n".join(f"  `{w}`  ({o})" for w, o in sorted(missing.items()))
