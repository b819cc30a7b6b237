"""`emc reconcile AGENCY PERIOD --file EXPORT`: an agency's own records against EMC's (đối soát,
issue 15 item 4).

The export (CSV with a header row, or JSON lines; README "Reconciliation") lists the agency's
dossiers: `dossier_id`, `procedure`, `received_at`, `channel`, `resolved_at`, `outcome`, and
optionally `classification` (full_online | partial_online | offline). The period's figures count
dossiers *resolved* in it (contract section 3), so both sides are compared on those: an export
row whose `resolved_at` falls in the period (Asia/Ho_Chi_Minh), and a dossier whose counts in the
period include `resolved` on EMC's side. EMC's side comes from the dossier endpoint of the
worker that owns the agency (streams/worker/dossier_api.py), never from a changelog.

Three kinds of discrepancy, each with the events EMC holds and the rule that decided:
`missing_in_emc` (the export counts it, EMC does not), `missing_in_export` (EMC counts it, the
export does not), `different` (both count it, a field differs). The counts both ways close it.
"""

from __future__ import annotations

import csv
import io
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode

import orjson

from streams.domain.dossier import MODES, periods_at
from streams.domain.events import CHANNELS, RFC3339_PATTERN, rfc3339_to_us
from streams.domain.instants import us_to_rfc3339
from streams.errors import ConfigError, ExternalServiceError, InvalidEvent
from streams.reports.explain import event_line, rule_text

EXPORT_FIELDS = ("dossier_id", "procedure", "received_at", "channel", "resolved_at", "outcome", "classification")
OUTCOMES = ("completed", "rejected")
KINDS = ("missing_in_emc", "missing_in_export", "different")
COMPARED = ("procedure", "channel", "received_at", "resolved_at", "outcome", "classification")
COUNT_NAMES = ("resolved", "completed", "rejected", "full_online", "partial_online", "offline", "unclassified")
LOOKUP_CHUNK = 200  # dossier ids per by-id request (the endpoint takes up to 500)
READ_BYTES = 256 * 1024  # bytes of the answer read at once


class ExportRow(NamedTuple):
    """One dossier of the export, checked. A named tuple: 200,000 of them are built in a
    reconciliation, at a third of a frozen dataclass's cost each."""

    line: int
    dossier_id: str
    procedure: str | None
    received_at_us: int | None
    channel: str | None
    resolved_at_us: int | None
    outcome: str | None
    classification: str | None

    def resolved_in(self, period: str) -> bool:
        return self.resolved_at_us is not None and period in periods_at(self.resolved_at_us)


# -- reading the export ------------------------------------------------------------------------

CLASSIFICATIONS = tuple(m for m in MODES if m != "unclassified")


def _instant(text: str, source: str, line: int, name: str) -> int | None:
    if not text:
        return None
    try:
        return rfc3339_to_us(text)
    except InvalidEvent as exc:
        if RFC3339_PATTERN.fullmatch(text):
            raise ConfigError(f"{source}:{line}: {name} {text!r}: {exc.detail}") from None
        raise ConfigError(f"{source}:{line}: {name} {text!r} is not an RFC 3339 time with its offset (2024-12-10T10:00:00+07:00)") \
            from None


def _bad_choice(text: str, allowed: Iterable[str], source: str, line: int, name: str) -> ConfigError:
    return ConfigError(f"{source}:{line}: {name} {text!r} is not one of {', '.join(allowed)}")


def _export_row(source: str, line: int, dossier_id: str, procedure: str, received_at: str, channel: str, resolved_at: str,
                outcome: str, classification: str) -> ExportRow:
    """One export record from its values (stripped, "" when absent), checked; ConfigError
    naming the file (`source`) and line when it is bad. Called once per row of the export:
    the checks are inline, and the message is only formatted for a bad row."""
    if not dossier_id:
        raise ConfigError(f"{source}:{line}: dossier_id is missing")
    if channel and channel not in CHANNELS:
        raise _bad_choice(channel, CHANNELS, source, line, "channel")
    if outcome and outcome not in OUTCOMES:
        raise _bad_choice(outcome, OUTCOMES, source, line, "outcome")
    if classification and classification not in CLASSIFICATIONS:
        raise _bad_choice(classification, CLASSIFICATIONS, source, line, "classification")
    if (not resolved_at) != (not outcome):
        raise ConfigError(f"{source}:{line}: resolved_at and outcome go together (both, or neither for an unresolved dossier)")
    return ExportRow(line, dossier_id, procedure or None, _instant(received_at, source, line, "received_at"), channel or None,
                     _instant(resolved_at, source, line, "resolved_at"), outcome or None, classification or None)


def _column(name: str) -> str:
    return "procedure" if name == "procedure_code" else name


def export_row(fields: Mapping[str, object], source: str, line: int) -> ExportRow:
    """One export record (a JSON line's object) of line `line` of file `source`, checked;
    ConfigError naming the file and line when it is bad."""
    values = dict.fromkeys(EXPORT_FIELDS, "")
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{source}:{line}: {_column(name)} must be a string, got {value!r}")
        if _column(name) in values:
            values[_column(name)] = (value or "").strip()
    return _export_row(source, line, *values.values())


def _csv_rows(path: Path, text: str) -> Iterator[ExportRow]:
    source = str(path)
    reader = csv.reader(io.StringIO(text))
    header = [_column(column.strip()) for column in next(reader, [])]
    if "dossier_id" not in header:
        raise ConfigError(f"{path}: the CSV header has no dossier_id column (columns: {', '.join(EXPORT_FIELDS)})")
    width = len(header)
    # The export fields' columns, in EXPORT_FIELDS order; a field without a column reads the
    # "" appended to every row, at index `width`.
    pick = itemgetter(*(header.index(name) if name in header else width for name in EXPORT_FIELDS))
    for values in reader:
        if len(values) != width:
            if not values:
                continue  # a blank line
            if len(values) > width:
                raise ConfigError(f"{path}:{reader.line_num}: more values than header columns")
            values += [""] * (width - len(values))  # a short row: its missing values are absent
        values.append("")
        yield _export_row(source, reader.line_num, *[value.strip() for value in pick(values)])


def read_export(path: Path) -> list[ExportRow]:
    """The export's rows: JSON lines when its first character is `{`, else CSV with a header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {path}: {exc}") from None
    rows: list[ExportRow] = []
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object")
            rows.append(export_row(record, str(path), number))
    else:
        rows = list(_csv_rows(path, text))
    seen: dict[str, int] = {}
    for row in rows:
        if row.dossier_id in seen:
            raise ConfigError(f"{path}:{row.line}: dossier {row.dossier_id} already on line {seen[row.dossier_id]}")
        seen[row.dossier_id] = row.line
    return rows


# -- reading EMC's side --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerClient:
    """How to reach the workers' dossier endpoint: the URL of one worker (redirects to the
    owner are followed), and the metrics port's basic auth."""

    url: str
    authorization: bytes | None = None
    timeout_s: float = 60.0
    tls_context: ssl.SSLContext | None = None

    def lines(self, agency: str, period: str, dossier_ids: Iterable[str] = (), view: str = "full") -> Iterator[dict]:
        query = urlencode([("agency", agency), ("period", period), ("view", view), *(("dossier", d) for d in dossier_ids)])
        request = urllib.request.Request(f"{self.url.rstrip('/')}/v1/dossiers?{query}")
        if self.authorization is not None:
            request.add_header("Authorization", self.authorization.decode("latin-1"))
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout_s, context=self.tls_context)
        except urllib.error.HTTPError as exc:
            raise ExternalServiceError(f"{self.url}: {exc.code} {exc.read().decode('utf-8', 'replace').strip()}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ExternalServiceError(f"worker {self.url} unreachable: {exc}") from None
        with response:
            # Read in large chunks and split here: a readline per line through http.client
            # cost as much as decoding the line.
            pending = b""
            while True:
                try:
                    chunk = response.read1(READ_BYTES)
                except OSError as exc:
                    raise ExternalServiceError(f"{self.url}: the answer was cut: {exc}") from None
                if not chunk:
                    raise ExternalServiceError(f"{self.url}: the answer was cut before its end (a rebalance? try again)")
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for raw in lines:
                    record = orjson.loads(raw)
                    if record.get("end"):
                        return
                    yield record


def read_summaries(client: WorkerClient, agency: str, period: str) -> dict[str, dict]:
    """EMC's summaries (`view=summary`) of the agency's dossiers with an event in the period, by id."""
    return {r["dossier_id"]: r for r in client.lines(agency, period, view="summary")}


def emc_records(client: WorkerClient, agency: str, period: str, export: list[ExportRow],
                summaries: Mapping[str, dict] | None = None) -> Reconciliation:
    """Read EMC's side and compare: the summaries of the agency's dossiers with an event in the
    period (`summaries` when already read), then the full records (events, counts of the
    period) of the dossiers that disagree, read by id whatever period EMC counts them in,
    attached to their discrepancies."""
    if summaries is None:
        summaries = read_summaries(client, agency, period)
    result = reconcile(agency, period, export, summaries)
    disagreeing = [d.dossier_id for d in result.discrepancies]
    details: dict[str, dict] = {}
    for start in range(0, len(disagreeing), LOOKUP_CHUNK):
        details.update((r["dossier_id"], r) for r in client.lines(agency, period, disagreeing[start:start + LOOKUP_CHUNK]))
    return with_details(result, details)


# -- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str  # one of KINDS
    dossier_id: str
    note: str
    fields: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # name -> (EMC, export), when different
    emc: dict | None = None  # the endpoint's full record, when EMC holds the dossier (and it was read)
    export: ExportRow | None = None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    agency: str
    period: str
    emc_counts: dict[str, int]
    export_counts: dict[str, int | None]  # None: the export has no classification column
    discrepancies: list[Discrepancy]
    export_rows: int  # in the file
    export_outside_period: int  # rows not resolved in the period (ignored)

    @property
    def agrees(self) -> bool:
        return not self.discrepancies


def _time(us: int | None) -> str | None:
    return None if us is None else us_to_rfc3339(us)


def _same_second(emc_us: int | None, export_us: int | None) -> bool:
    if emc_us is None or export_us is None:
        return emc_us is None and export_us is None
    return emc_us // 1_000_000 == export_us // 1_000_000


def _differences(summary: Mapping, row: ExportRow) -> dict[str, tuple[str | None, str | None]]:
    """The fields the export gives that differ from what EMC holds and decided (a summary)."""
    record = summary
    found: dict[str, tuple[str | None, str | None]] = {}
    if row.procedure is not None and row.procedure != record["procedure"]:
        found["procedure"] = (record["procedure"], row.procedure)
    if row.channel is not None and row.channel != record["channel"]:
        found["channel"] = (record["channel"], row.channel)
    if row.received_at_us is not None and not _same_second(record["received_at_us"], row.received_at_us):
        found["received_at"] = (_time(record["received_at_us"]), _time(row.received_at_us))
    if not _same_second(record["resolved_at_us"], row.resolved_at_us):
        found["resolved_at"] = (_time(record["resolved_at_us"]), _time(row.resolved_at_us))
    if row.outcome != record["outcome"]:
        found["outcome"] = (record["outcome"], row.outcome)
    if row.classification is not None and row.classification != record["mode"]:
        found["classification"] = (record["mode"], row.classification)
    return found


def _counts(modes_outcomes: Iterable[tuple[str | None, str | None]], classified: bool) -> dict[str, int | None]:
    counts: dict[str, int | None] = {name: 0 for name in COUNT_NAMES}
    for mode, outcome in modes_outcomes:
        counts["resolved"] += 1  # type: ignore[operator]
        counts[outcome or "completed"] += 1  # type: ignore[operator]
        if classified and mode is not None:
            counts[mode] += 1  # type: ignore[operator]
    if not classified:
        for mode in ("full_online", "partial_online", "offline", "unclassified"):
            counts[mode] = None
    return counts


def _missing_note(held: Mapping | None) -> str:
    """Why EMC does not count a dossier the export counts, from its full record (None: not held)."""
    if held is None:
        return "EMC has no event of this dossier"
    if held["voided"]:
        return "EMC holds it voided: it counts nowhere"
    if held["resolved_at"] is None:
        return "EMC holds it unresolved: no live result_returned or rejected event"
    return f"EMC counts it resolved at {held['resolved_at']}, in another period"


def with_details(result: Reconciliation, details: Mapping[str, dict]) -> Reconciliation:
    """The discrepancies with the full records EMC holds of their dossiers (`details`, by id)."""
    return replace(result, discrepancies=[
        replace(d, emc=details.get(d.dossier_id),
                note=_missing_note(details.get(d.dossier_id)) if d.kind == "missing_in_emc" else d.note)
        for d in result.discrepancies])


def reconcile(agency: str, period: str, export: list[ExportRow], summaries: Mapping[str, dict]) -> Reconciliation:
    """Pure: the comparison of the export with EMC's summaries (the endpoint's `view=summary`);
    `with_details` then attaches what each discrepancy shows."""
    counted_by_emc = {d: r for d, r in summaries.items() if r["resolved"]}
    by_id = {row.dossier_id: row for row in export}
    counted_by_export = {row.dossier_id: row for row in export if row.resolved_in(period)}
    found: list[Discrepancy] = []
    for dossier_id in sorted(counted_by_export.keys() - counted_by_emc.keys()):
        found.append(Discrepancy("missing_in_emc", dossier_id, _missing_note(None), export=counted_by_export[dossier_id]))
    for dossier_id in sorted(counted_by_emc.keys() - counted_by_export.keys()):
        row = by_id.get(dossier_id)
        if row is None:
            note = "not in the export"
        elif row.resolved_at_us is None:
            note = "the export has it unresolved"
        else:
            note = f"the export has it resolved at {_time(row.resolved_at_us)}, in another period"
        found.append(Discrepancy("missing_in_export", dossier_id, note, export=row))
    for dossier_id in sorted(counted_by_emc.keys() & counted_by_export.keys()):
        record, row = counted_by_emc[dossier_id], counted_by_export[dossier_id]
        differences = _differences(record, row)
        if differences:
            note = ", ".join(f"{name}: EMC {emc or '-'}, export {theirs or '-'}" for name, (emc, theirs) in differences.items())
            found.append(Discrepancy("different", dossier_id, note, differences, export=row))
    classified = any(row.classification is not None for row in counted_by_export.values())
    return Reconciliation(
        agency=agency,
        period=period,
        emc_counts=_counts(((r["mode"], r["outcome"]) for r in counted_by_emc.values()), True),  # type: ignore[arg-type]
        export_counts=_counts(((row.classification, row.outcome) for row in counted_by_export.values()), classified),
        discrepancies=found,
        export_rows=len(export),
        export_outside_period=len(export) - len(counted_by_export),
    )


# -- rendering ---------------------------------------------------------------------------------


def _export_json(row: ExportRow | None) -> dict | None:
    if row is None:
        return None
    return {"line": row.line, "dossier_id": row.dossier_id, "procedure": row.procedure, "received_at": _time(row.received_at_us),
            "channel": row.channel, "resolved_at": _time(row.resolved_at_us), "outcome": row.outcome,
            "classification": row.classification}


def reconciliation_json(r: Reconciliation) -> dict:
    return {
        "agency": r.agency,
        "period": r.period,
        "agrees": r.agrees,
        "counts": {"emc": r.emc_counts, "export": r.export_counts},
        "export_rows": r.export_rows,
        "export_rows_outside_period": r.export_outside_period,
        "discrepancies": {kind: sum(d.kind == kind for d in r.discrepancies) for kind in KINDS},
        "dossiers": [
            {"kind": d.kind, "dossier_id": d.dossier_id, "note": d.note,
             "fields": {name: {"emc": emc, "export": theirs} for name, (emc, theirs) in d.fields.items()},
             "rule": rule_text(d.emc) if d.emc is not None else None, "emc": d.emc, "export": _export_json(d.export)}
            for d in r.discrepancies
        ],
    }


def render_reconciliation_text(r: Reconciliation, name: str) -> str:
    def figure(value: int | None) -> str:
        return "-" if value is None else str(value)

    out = [
        f"{name} ({r.agency}), period {r.period}: dossiers resolved in the period, EMC against the agency's export",
        f"{'':<16}{'EMC':>10}{'export':>10}",
        *(f"{count:<16}{figure(r.emc_counts[count]):>10}{figure(r.export_counts[count]):>10}" for count in COUNT_NAMES),
        f"export rows: {r.export_rows}, of which {r.export_outside_period} not resolved in {r.period} (not compared)",
    ]
    if r.agrees:
        out.append("agree: no discrepancy")
        return "\n".join(out) + "\n"
    out.append("discrepancies: " + ", ".join(f"{kind} {sum(d.kind == kind for d in r.discrepancies)}" for kind in KINDS))
    for kind in KINDS:
        found = [d for d in r.discrepancies if d.kind == kind]
        if not found:
            continue
        out += ["", f"{kind}: {len(found)} dossier(s)"]
        for d in found:
            out.append(f"  dossier {d.dossier_id}: {d.note}")
            if d.export is not None:
                out.append(f"    export line {d.export.line}: procedure {d.export.procedure or '-'}, channel {d.export.channel or '-'}, "
                           f"received {_time(d.export.received_at_us) or '-'}, resolved {_time(d.export.resolved_at_us) or '-'} "
                           f"({d.export.outcome or 'unresolved'})"
                           + (f", classification {d.export.classification}" if d.export.classification else ""))
            if d.emc is not None:
                out.append(f"    EMC: {rule_text(d.emc)}; outcome {d.emc['outcome'] or '-'}, resolved {d.emc['resolved_at'] or '-'}")
                out += [event_line(e) for e in d.emc["events"]]
    return "\n".join(out) + "\n"


def render_reconciliation_csv(r: Reconciliation) -> str:
    """One row per discrepancy and differing field (a `different` dossier: one per field)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["agency", "period", "kind", "dossier_id", "field", "emc", "export", "emc_rule", "note"])
    for d in r.discrepancies:
        rule = rule_text(d.emc) if d.emc is not None else ""
        for name, (emc, theirs) in (d.fields or {"": (None, None)}).items():
            writer.writerow([r.agency, r.period, d.kind, d.dossier_id, name, emc or "", theirs or "", rule, d.note])
    return buffer.getvalue()
