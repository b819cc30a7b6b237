"""The agency registry: the data, its schema, and the 2025 reorganisation as history."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.cli import main
from streams.domain.registry import Registry, render_registry
from streams.errors import RegistryError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "streams" / "data" / "registry.json"
REGISTRY = Registry.load()


def _provinces(day: date) -> list[str]:
    return [a.code for a in REGISTRY.valid_on(day) if a.block == "province"]


def _ministries(day: date) -> list[str]:
    return [a.code for a in REGISTRY.valid_on(day) if a.block == "ministry"]


def test_data_follows_its_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "registry.v1.json").read_text())
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(json.loads(DATA.read_text())))
    assert not errors, errors[:3]


def test_63_provinces_until_june_2025_and_34_from_july() -> None:
    assert len(_provinces(date(2024, 12, 31))) == 63
    assert len(_provinces(date(2025, 6, 30))) == 63
    assert len(_provinces(date(2025, 7, 1))) == 34
    assert len(_provinces(date(2026, 11, 25))) == 34


def test_ministries_before_and_after_the_march_2025_merger() -> None:
    before, after = set(_ministries(date(2025, 2, 28))), set(_ministries(date(2025, 3, 1)))
    assert {"BKHDT", "BLDTBXH", "BTNMT", "BNNPTNT", "BGTVT", "BTTTT", "UBDT"} <= before - after
    assert {"BNNMT", "BDTTG"} <= after - before
    assert REGISTRY.final_successor("BKHDT") == "BTC"
    assert REGISTRY.final_successor("BTNMT") == REGISTRY.final_successor("BNNPTNT") == "BNNMT"


def test_merged_provinces_point_at_the_unit_that_took_them_over() -> None:
    by_name = {a.short_name: a for a in REGISTRY if a.valid_to is not None}
    ha_nam, nam_dinh = by_name["Hà Nam"], by_name["Nam Định"]
    assert ha_nam.valid_to == date(2025, 6, 30)
    assert ha_nam.successor == nam_dinh.successor
    assert REGISTRY.get(ha_nam.successor).short_name == "Ninh Bình"  # type: ignore[union-attr]
    assert REGISTRY.get(ha_nam.successor).valid_from == date(2025, 7, 1)  # type: ignore[union-attr]


def test_every_successor_chain_ends_at_a_unit_valid_today() -> None:
    today = date(2026, 11, 25)
    for agency in REGISTRY:
        final = REGISTRY.get(REGISTRY.final_successor(agency.code))
        assert final is not None and final.is_valid_on(today), agency.code


def test_names_are_nfc_vietnamese() -> None:
    names = {a.short_name for a in REGISTRY} | {a.name for a in REGISTRY}
    assert {"Hà Nam", "Đà Nẵng", "Bộ Công Thương", "TP. Hồ Chí Minh"} <= names
    assert all(unicodedata.is_normalized("NFC", name) for name in names)
    assert any("Thừa Thiên Huế" in a.aliases for a in REGISTRY)


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
def test_every_unit_hands_over_to_a_successor_valid_from_the_next_day(day: date) -> None:
    """A unit may live beside the one that later absorbs it (Bộ Tài chính beside Bộ Kế hoạch
    và Đầu tư), but on any day each merged-away unit is either still valid or its final
    successor is: no day has figures with nowhere to go."""
    valid = {a.code for a in REGISTRY.valid_on(day)}
    for agency in REGISTRY:
        if agency.valid_from <= day and agency.code not in valid:
            assert agency.valid_to is not None and agency.valid_to < day
            assert REGISTRY.final_successor(agency.code) in valid, (agency.code, day)


def test_a_dangling_successor_is_rejected(tmp_path: Path) -> None:
    data = json.loads(DATA.read_text())
    data["agencies"][0] = dict(data["agencies"][0], valid_to="2024-12-31", successor="NOPE")
    broken = tmp_path / "registry.json"
    broken.write_text(json.dumps(data, ensure_ascii=False))
    with pytest.raises(RegistryError, match="NOPE"):
        Registry.load(broken)


def test_registry_list_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == len(REGISTRY)
    assert set(listed[0]) >= {"code", "name", "block", "valid_from", "valid_to", "successor"}
    table = render_registry(REGISTRY, "table", on=date(2025, 7, 1)).splitlines()
    assert len(table) == 1 + len(REGISTRY.valid_on(date(2025, 7, 1)))
    name_column = table[0].index("name")
    assert all(line[name_column - 2 : name_column] == "  " for line in table[1:])  # aligned columns


def test_a_bad_flag_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "list", "--format", "xml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emc: error:")
