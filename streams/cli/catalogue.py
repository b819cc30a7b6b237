"""`emc catalogue ...`: the procedure catalogue topic (`emc.procedure-catalogue.v1`).

    emc catalogue import FILE.csv|FILE.jsonl    add procedures and level changes
    emc catalogue list [--agency CODE] [--on DATE] [--format json|table]
    emc catalogue withdraw AGENCY PROCEDURE_CODE [--from DATE] [--erase]
        end a procedure from DATE (default today), keeping its history; --erase: remove it
        and its history altogether (a tombstone: for a record sent by mistake)

An import file is UTF-8 (a byte-order mark is allowed), one procedure level per row: CSV with
a header `code,name,agency,level,valid_from` (any order; `procedure_code`, `agency_code` also
accepted), or JSON lines with the same keys. Rows of an existing procedure add to its history
on the topic. Every row is checked before anything is sent: a bad row stops the import with
every bad line listed (exit 2), and nothing is sent.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import date
from pathlib import Path

import orjson

from streams.cli.flags import add_settings, subcommands, with_settings_and_registry
from streams.domain.catalogue import (
    WITHDRAWN,
    Catalogue,
    ImportRow,
    LevelChange,
    catalogue_key,
    encode_procedure,
    import_row,
    merge_import,
)
from streams.domain.periods import today_local
from streams.domain.registry import Registry
from streams.errors import ConfigError, InvalidCatalogueRecord
from streams.reports.table import render_table
from streams.settings import Settings

FORMATS = ("json", "table")


def register(commands: argparse._SubParsersAction) -> None:
    catalogue = commands.add_parser("catalogue", help="the procedure catalogue (indicators 1 and 2)")
    sub = subcommands(catalogue, "catalogue_command")
    importing = sub.add_parser("import", help="import procedures and their levels from a .csv or .jsonl file")
    importing.add_argument("file", type=Path)
    add_settings(importing, ["broker"])
    importing.set_defaults(run=with_settings_and_registry(_import_file))
    listing = sub.add_parser("list", help="print the catalogue")
    listing.add_argument("--agency", default=None, help="only this agency's procedures")
    listing.add_argument("--on", type=date.fromisoformat, default=None,
                         help="levels in force on this date (default: today, Asia/Ho_Chi_Minh)")
    listing.add_argument("--format", choices=FORMATS, default="table")
    add_settings(listing, ["broker"])
    listing.set_defaults(run=with_settings_and_registry(_list))
    withdraw = sub.add_parser("withdraw", help="end a procedure from a date, keeping its history (--erase: a tombstone)")
    withdraw.add_argument("agency")
    withdraw.add_argument("procedure_code")
    withdraw.add_argument("--from", dest="valid_from", type=date.fromisoformat, default=None,
                          help="first day it is not in force (default: today, Asia/Ho_Chi_Minh)")
    withdraw.add_argument("--erase", action="store_true",
                          help="remove the procedure and its whole history (a tombstone), as if never catalogued")
    add_settings(withdraw, ["broker"])
    withdraw.set_defaults(run=with_settings_and_registry(_withdraw))


def _import_file(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.catalogue import read_catalogue

    rows = read_import_file(args.file)
    return _import(settings, registry, read_catalogue(settings, registry), rows)


def _list(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.catalogue import read_catalogue

    catalogue = read_catalogue(settings, registry)
    print(render_catalogue(catalogue, args.on or today_local(), args.agency, args.format), end="")
    return 0


def read_import_file(path: Path) -> list[ImportRow]:
    """The rows of a .csv or .jsonl file; a file that cannot be read as such is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise ConfigError(f"{path}: empty, expected a header code,name,agency,level,valid_from")
        return [import_row(reader.line_num, row) for row in reader]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            rows.append(import_row(number, obj) if isinstance(obj, dict) else ImportRow(number, {"_bad": True}))
        return rows
    raise ConfigError(f"{path}: expected a .csv or .jsonl file")


def _import(settings: Settings, registry: Registry, catalogue: Catalogue, rows: list[ImportRow]) -> int:
    from streams.kafka.catalogue import send_catalogue

    not_objects = [row.line for row in rows if "_bad" in row.fields]
    if not_objects:
        raise ConfigError(f"{len(not_objects)} bad row(s), nothing imported: line(s) "
                          f"{', '.join(map(str, not_objects))} not a JSON object")
    try:
        procedures = merge_import(registry, catalogue, rows)
    except InvalidCatalogueRecord as exc:
        raise ConfigError(str(exc)) from None
    if procedures:
        send_catalogue(settings, [encode_procedure(p) for p in procedures])
    print(f"{len(rows)} row(s) read, {len(procedures)} procedure record(s) sent to {settings.catalogue_topic}")
    return 0


def _withdraw(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from streams.kafka.catalogue import send_catalogue

    if args.agency not in registry:
        raise ConfigError(f"unknown agency {args.agency!r} (see `emc registry list`)")
    key = catalogue_key(args.agency, args.procedure_code)
    if args.erase:
        if args.valid_from is not None:
            raise ConfigError("--erase removes the whole history: it takes no --from")
        partition, offset = send_catalogue(settings, [(key.encode("utf-8"), None)])[-1]
        print(f"{key} erased (topic {settings.catalogue_topic}, partition {partition}, offset {offset})")
        return 0
    from streams.kafka.catalogue import read_catalogue

    current = read_catalogue(settings, registry).get(args.agency, args.procedure_code)
    if current is None:
        raise ConfigError(f"{key} is not in the catalogue (see `emc catalogue list --agency {args.agency}`)")
    day = args.valid_from or today_local()
    if day <= current.levels[0].valid_from:
        raise ConfigError(f"{key} is in force from {current.levels[0].valid_from.isoformat()}: withdraw it after "
                          "that day, or --erase it")
    partition, offset = send_catalogue(settings, [encode_procedure(current.with_level(current.name, LevelChange(day, WITHDRAWN)))])[-1]
    print(f"{key} withdrawn from {day.isoformat()}, its history kept (topic {settings.catalogue_topic}, "
          f"partition {partition}, offset {offset})")
    return 0


def render_catalogue(catalogue: Catalogue, on: date, agency: str | None, fmt: str) -> str:
    procedures = [p for p in catalogue.procedures() if agency is None or p.agency_code == agency]
    if fmt == "json":
        return json.dumps([{**p.to_json(), "level_on": p.level_on(on)} for p in procedures],
                          ensure_ascii=False, indent=2) + "\n"
    header = ("agency", "code", f"level on {on.isoformat()}", "name")
    rows = [(p.agency_code, p.procedure_code, p.level_on(on) or ("(not yet)" if on < p.levels[0].valid_from else "(withdrawn)"), p.name) for p in procedures]
    return render_table(header, rows) + "\n"
