"""The examples in the README and docs/ are true.

Conventions of the documents (the info string of a fenced block):
- ```` ```json ````: one JSON value. An object with a `schema` field is validated against
  that schema in `schemas/`, and through the project's own parser.
- ```` ```json events ````: JSON lines, one input event each (what `emc publish FILE` takes);
  every line is validated, and the block is followed by a ```` ```json counts ```` block:
  `{period: {count: n}}`, the exact non-zero counts those events give in each period listed,
  computed here with the pure domain core.
- ```` ```json ranking ````: a `ranking:` document from Redis, with exactly the fields the
  code writes.
- ```` ```sh ````: every `emc ...` command line parses with the real CLI parser.
- ```` ```python ````: compiles.
Relative links resolve to files of the repository, and their `#anchors` to headings.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streams.cli.main import build_parser
from streams.domain.control import record_from_json
from streams.domain.dossier import dossier_counts, live_events, unique_events
from streams.domain.events import InvalidEvent, parse_event, rfc3339_to_us
from streams.domain.rankings import block_rankings, ranking_json
from streams.domain.registry import Registry
from tests.unit.docs.markdown import REPO_ROOT, Block, anchors, documents, fenced_blocks, links

REGISTRY = Registry.load()
_checker = FormatChecker(formats=())


@_checker.checks("date-time", raises=InvalidEvent)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or rfc3339_to_us(value) is not None


_SCHEMA_FILES = {
    "emc.dossier-event.v1": "dossier-event.v1.json",
    "emc.agency-control.v1": "agency-control.v1.json",
}
VALIDATORS = {
    schema_id: Draft202012Validator(json.loads((REPO_ROOT / "schemas" / name).read_text(encoding="utf-8")), format_checker=_checker)
    for schema_id, name in _SCHEMA_FILES.items()
}


def _blocks() -> list[Block]:
    return [block for path in documents() for block in fenced_blocks(path)]


def _json_blocks() -> list[Block]:
    return [b for b in _blocks() if b.language == "json"]


def _block_id(block: Block) -> str:
    return block.where


def _values(block: Block) -> list[object]:
    if block.role == "events":
        return [json.loads(line) for line in block.text.splitlines() if line.strip()]
    return [json.loads(block.text)]


def check_record(value: object, where: str) -> None:
    """Schema, then the project's own parser, for a record that names its schema."""
    if not isinstance(value, dict) or value.get("schema") not in VALIDATORS:
        return
    errors = sorted(VALIDATORS[value["schema"]].iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{where}: breaks schemas/{_SCHEMA_FILES[value['schema']]}: " + "; ".join(e.message for e in errors)
    if value["schema"] == "emc.dossier-event.v1":
        raw = json.dumps(value, ensure_ascii=False).encode("utf-8")
        parse_event(raw, value["agency_code"].encode())
        assert value["agency_code"] in REGISTRY, f"{where}: agency {value['agency_code']} is not in the registry"
    else:
        record_from_json(REGISTRY, value)


@pytest.mark.parametrize("block", _json_blocks(), ids=_block_id)
def test_json_examples_are_valid(block: Block) -> None:
    try:
        values = _values(block)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.where}: not JSON ({'JSON lines' if block.role == 'events' else 'one value'}): {exc}")
    for value in values:
        check_record(value, block.where)
    if block.role == "events":
        assert all(isinstance(v, dict) and v.get("schema") == "emc.dossier-event.v1" for v in values), \
            f"{block.where}: a `json events` block holds dossier events only"


def counts_of(events: list[dict]) -> dict[str, dict[str, int]]:
    """period -> non-zero counts, summed over the dossiers of the events (the domain core)."""
    by_dossier: dict[tuple[str, str], list] = defaultdict(list)
    for value in events:
        event = parse_event(json.dumps(value).encode(), value["agency_code"].encode())
        if event.type != "heartbeat":
            by_dossier[(event.agency_code, event.dossier_id)].append(event)
    total: dict[str, dict[str, int]] = defaultdict(dict)
    for dossier_events in by_dossier.values():
        for (period, field), n in dossier_counts(live_events(unique_events(dossier_events))).items():
            total[period][field] = total[period].get(field, 0) + n
    return {period: {f: n for f, n in fields.items() if n} for period, fields in total.items()}


def _event_sequences() -> list[tuple[Block, Block | None]]:
    pairs = []
    for path in documents():
        blocks = fenced_blocks(path)
        for i, block in enumerate(blocks):
            if block.language == "json" and block.role == "events":
                following = blocks[i + 1] if i + 1 < len(blocks) else None
                pairs.append((block, following if following is not None and following.role == "counts" else None))
    return pairs


def test_the_documents_have_worked_examples() -> None:
    pages = {block.path.name for block, _ in _event_sequences()}
    assert {"contract.md"} <= pages, f"worked examples expected in docs/contract.md, found in {sorted(pages)}"


@pytest.mark.parametrize(("events", "counts"), _event_sequences(), ids=[b.where for b, _ in _event_sequences()])
def test_event_sequences_classify_as_the_document_says(events: Block, counts: Block | None) -> None:
    assert counts is not None, f"{events.where}: a `json events` block must be followed by a `json counts` block"
    expected = json.loads(counts.text)
    actual = counts_of(_values(events))
    for period, fields in expected.items():
        assert actual.get(period, {}) == fields, (
            f"{counts.where}: the events of {events.where} give, in {period}, {actual.get(period, {})}; "
            f"the document says {fields}"
        )


def test_ranking_examples_have_the_fields_the_code_writes() -> None:
    rankings = block_rankings(REGISTRY, "2025-04", {}, {}, date(2025, 4, 30), "as-was")
    written = set(ranking_json(rankings["province"])) | {"generated_at"}
    examples = [b for b in _json_blocks() if b.role == "ranking"]
    assert examples, "no `json ranking` example found"
    for block in examples:
        assert set(json.loads(block.text)) == written, f"{block.where}: fields differ from ranking_json: {sorted(written)}"


# -- commands --------------------------------------------------------------------------------

_SHELL = {"sh", "bash", "shell", "console"}
_STOP = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "<"}


def emc_command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `emc ...` (or `.venv/bin/emc`, `python -m streams`) line of a shell block."""
    found = []
    for block in _blocks():
        if block.language not in _SHELL:
            continue
        text = re.sub(r"\\\n\s*", " ", block.text)
        for n, line in enumerate(text.splitlines()):
            words = shlex.split(line.removeprefix("$ "), comments=True)
            for i, word in enumerate(words):
                if word in _STOP:
                    words = words[:i]
                    break
            if words and (words[0] == "emc" or words[0].endswith("/emc")):
                found.append((f"{block.where}+{n}", words[1:]))
            elif len(words) > 2 and words[1:3] == ["-m", "streams"] and "python" in words[0]:
                found.append((f"{block.where}+{n}", words[3:]))
    return found


@pytest.mark.parametrize(("where", "argv"), emc_command_lines(), ids=[w for w, _ in emc_command_lines()])
def test_emc_commands_in_the_documents_parse(where: str, argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: `emc {' '.join(argv)}` does not parse (exit {exc.code})")
    except Exception as exc:  # noqa: BLE001 - any parser error is the document's error
        pytest.fail(f"{where}: `emc {' '.join(argv)}` does not parse: {exc}")


# -- links -----------------------------------------------------------------------------------


def _relative_links() -> list[tuple[Path, str]]:
    return [(path, target) for path in documents() for target in links(path)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


@pytest.mark.parametrize(("page", "target"), _relative_links(),
                         ids=[f"{p.relative_to(REPO_ROOT)}->{t}" for p, t in _relative_links()])
def test_relative_links_resolve_inside_the_repository(page: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    resolved = (page.parent / file_part).resolve() if file_part else page
    assert resolved.is_relative_to(REPO_ROOT), f"{page.name}: link {target} leaves the repository"
    assert resolved.exists(), f"{page.name}: link {target} names {resolved.relative_to(REPO_ROOT)}, which does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{page.name}: link {target}: no heading #{anchor} in {resolved.name}"


def test_no_document_points_outside_the_repository() -> None:
    """The contract used to live in ../shared/, which users of the project cannot see."""
    offenders = []
    for path in [*documents(), *sorted((REPO_ROOT / "streams").rglob("*.py")), *sorted((REPO_ROOT / "tests").rglob("*.py"))]:
        if path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("../shared", "CONTRACT.md", "DESIGN.md"):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO_ROOT)} mentions {needle}")
    assert not offenders, "point to docs/contract.md or the README instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("block", [b for b in _blocks() if b.language == "python"], ids=_block_id)
def test_python_examples_compile(block: Block) -> None:
    try:
        compile(block.text, block.where, "exec")
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: not Python: {exc}")


def test_the_vietnamese_and_english_guides_match() -> None:
    """docs/ket-noi.md is docs/connecting.md in Vietnamese: the same sections, the same
    examples and commands, block for block."""
    english, vietnamese = (REPO_ROOT / "docs" / "connecting.md"), (REPO_ROOT / "docs" / "ket-noi.md")
    assert [(b.language, b.role, b.text) for b in fenced_blocks(vietnamese)] == \
        [(b.language, b.role, b.text) for b in fenced_blocks(english)], "the guides' code blocks differ"
    assert len(anchors(vietnamese)) == len(anchors(english)), "the guides have different numbers of sections"
