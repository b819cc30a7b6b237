"""The agency registry: its data against the facts it encodes, its schema, its loader and its rendering."""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.cli.main import main
from streams.domain.registry import Registry
from streams.errors import ConfigError, RegistryError
from streams.reports.registry import render_registry
from streams.reports.table import display_width
from tests.support.paths import REPO_ROOT

DATA = REPO_ROOT / "streams" / "data" / "registry.json"
SCHEMA = REPO_ROOT / "schemas" / "registry.v1.json"
REGISTRY = Registry.load()
TODAY = date(2026, 11, 25)
LAST_DAY_OF_63, FIRST_DAY_OF_34 = date(2025, 6, 30), date(2025, 7, 1)
LAST_DAY_BEFORE_MINISTRY_MERGER, FIRST_DAY_AFTER_MINISTRY_MERGER = date(2025, 2, 28), date(2025, 3, 1)

# Nghị quyết 202/2025/QH15: each unit formed on 2025-07-01, by the pre-merger units it took over.
MERGED_PROVINCES = {
    "Tuyên Quang": {"Hà Giang", "Tuyên Quang"},
    "Lào Cai": {"Lào Cai", "Yên Bái"},
    "Thái Nguyên": {"Bắc Kạn", "Thái Nguyên"},
    "Phú Thọ": {"Phú Thọ", "Vĩnh Phúc", "Hòa Bình"},
    "Bắc Ninh": {"Bắc Giang", "Bắc Ninh"},
    "Hưng Yên": {"Hưng Yên", "Thái Bình"},
    "Hải Phòng": {"Hải Phòng", "Hải Dương"},
    "Ninh Bình": {"Hà Nam", "Nam Định", "Ninh Bình"},
    "Quảng Trị": {"Quảng Bình", "Quảng Trị"},
    "Đà Nẵng": {"Đà Nẵng", "Quảng Nam"},
    "Quảng Ngãi": {"Quảng Ngãi", "Kon Tum"},
    "Gia Lai": {"Gia Lai", "Bình Định"},
    "Khánh Hòa": {"Khánh Hòa", "Ninh Thuận"},
    "Lâm Đồng": {"Lâm Đồng", "Đắk Nông", "Bình Thuận"},
    "Đắk Lắk": {"Đắk Lắk", "Phú Yên"},
    "TP. Hồ Chí Minh": {"TP. Hồ Chí Minh", "Bình Dương", "Bà Rịa - Vũng Tàu"},
    "Đồng Nai": {"Đồng Nai", "Bình Phước"},
    "Tây Ninh": {"Tây Ninh", "Long An"},
    "Cần Thơ": {"Cần Thơ", "Sóc Trăng", "Hậu Giang"},
    "Vĩnh Long": {"Vĩnh Long", "Bến Tre", "Trà Vinh"},
    "Đồng Tháp": {"Đồng Tháp", "Tiền Giang"},
    "An Giang": {"An Giang", "Kiên Giang"},
    "Cà Mau": {"Cà Mau", "Bạc Liêu"},
}
UNCHANGED_PROVINCES = {
    "Hà Nội", "Huế", "Cao Bằng", "Điện Biên", "Lai Châu", "Lạng Sơn",
    "Sơn La", "Quảng Ninh", "Thanh Hóa", "Nghệ An", "Hà Tĩnh",
}  # fmt: skip

# Nghị quyết 176/2025/QH15, and Bảo hiểm xã hội Việt Nam placed under Bộ Tài chính: absorbed -> absorber.
MINISTRY_MERGERS = {
    "BKHDT": "BTC",
    "BLDTBXH": "BNV",
    "BTNMT": "BNNMT",
    "BNNPTNT": "BNNMT",
    "BGTVT": "BXD",
    "BTTTT": "BKHCN",
    "UBDT": "BDTTG",
    "BHXH": "BTC",
}
NEW_MINISTRIES = {"BNNMT": "Bộ Nông nghiệp và Môi trường", "BDTTG": "Bộ Dân tộc và Tôn giáo"}
MINISTRIES_BEFORE = {
    "Bộ Công Thương", "Bộ Tài chính", "Bộ Tư pháp", "Bộ Lao động - Thương binh và Xã hội",
    "Bảo hiểm xã hội Việt Nam", "Bộ Thông tin và Truyền thông", "Bộ Nội vụ",
    "Bộ Khoa học và Công nghệ", "Bộ Xây dựng", "Bộ Giao thông vận tải", "Bộ Y tế",
    "Ngân hàng Nhà nước Việt Nam", "Bộ Giáo dục và Đào tạo", "Bộ Tài nguyên và Môi trường",
    "Bộ Quốc phòng", "Bộ Kế hoạch và Đầu tư", "Bộ Văn hóa, Thể thao và Du lịch", "Bộ Ngoại giao",
    "Bộ Công an", "Bộ Nông nghiệp và Phát triển nông thôn", "Ủy ban Dân tộc", "Thanh tra Chính phủ",
}  # fmt: skip


def _document() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _codes(day: date, block: str) -> set[str]:
    return {agency.code for agency in REGISTRY.valid_on(day) if agency.block == block}


def _short_names(codes: set[str] | list[str]) -> set[str]:
    return {REGISTRY.get(code).short_name for code in codes}  # type: ignore[union-attr]


# --- the data ------------------------------------------------------------------------------------------


def test_data_follows_its_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(_document()), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_schema_rejects_a_code_that_cannot_be_a_label_value() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    document = _document()
    document["agencies"][0]["code"] = "Bộ CT"
    assert not Draft202012Validator(schema).is_valid(document)


def test_codes_are_short_ascii_and_unique() -> None:
    codes = [entry["code"] for entry in _document()["agencies"]]
    assert len(codes) == len(set(codes)) == len(REGISTRY)
    assert all(re.fullmatch(r"[A-Z0-9][A-Z0-9_.-]{1,31}", code) and code.isascii() for code in codes)


def test_63_provinces_until_june_2025_and_34_from_july() -> None:
    for day in (date(2020, 1, 1), date(2024, 12, 31), LAST_DAY_OF_63):
        assert len(_codes(day, "province")) == 63, day
    for day in (FIRST_DAY_OF_34, TODAY, date(2030, 12, 31)):
        assert len(_codes(day, "province")) == 34, day


def test_the_july_2025_merger_is_history_not_an_edit() -> None:
    before, after = _codes(LAST_DAY_OF_63, "province"), _codes(FIRST_DAY_OF_34, "province")
    unchanged, merged_away, formed = before & after, before - after, after - before
    assert _short_names(unchanged) == UNCHANGED_PROVINCES
    assert len(merged_away) == 52 and len(formed) == 23
    for code in unchanged:
        assert REGISTRY.get(code).valid_to is None  # type: ignore[union-attr]
    for code in merged_away:
        agency = REGISTRY.get(code)
        assert agency is not None and agency.valid_to == LAST_DAY_OF_63 and agency.successor in formed, code
    for code in formed:
        agency = REGISTRY.get(code)
        assert agency is not None and agency.valid_from == FIRST_DAY_OF_34 and agency.valid_to is None, code


def test_each_merged_province_took_over_the_units_of_nghi_quyet_202() -> None:
    formed = _codes(FIRST_DAY_OF_34, "province") - _codes(LAST_DAY_OF_63, "province")
    composition = {
        REGISTRY.get(code).short_name: _short_names(REGISTRY.predecessors(code))  # type: ignore[union-attr]
        for code in formed
    }
    assert composition == MERGED_PROVINCES


def test_a_merged_unit_does_not_reuse_the_code_of_a_unit_it_absorbed() -> None:
    ha_nam = next(a for a in REGISTRY if a.short_name == "Hà Nam")
    new_ninh_binh = REGISTRY.get(ha_nam.successor)  # type: ignore[arg-type]
    old_ninh_binh = next(a for a in REGISTRY if a.short_name == "Ninh Bình" and a.valid_to == LAST_DAY_OF_63)
    assert new_ninh_binh is not None and new_ninh_binh.short_name == "Ninh Bình"
    assert new_ninh_binh.code != old_ninh_binh.code and old_ninh_binh.successor == new_ninh_binh.code


def test_ministries_before_and_after_the_march_2025_merger() -> None:
    before = _codes(LAST_DAY_BEFORE_MINISTRY_MERGER, "ministry")
    after = _codes(FIRST_DAY_AFTER_MINISTRY_MERGER, "ministry")
    assert len(before) == 22 and len(after) == 16
    assert {REGISTRY.get(code).name for code in before} == MINISTRIES_BEFORE  # type: ignore[union-attr]
    assert before - after == set(MINISTRY_MERGERS) and after - before == set(NEW_MINISTRIES)
    for absorbed, absorber in MINISTRY_MERGERS.items():
        agency = REGISTRY.get(absorbed)
        assert agency is not None and agency.valid_to == LAST_DAY_BEFORE_MINISTRY_MERGER
        assert agency.successor == absorber
    for code, name in NEW_MINISTRIES.items():
        agency = REGISTRY.get(code)
        assert agency is not None and agency.name == name and agency.valid_from == FIRST_DAY_AFTER_MINISTRY_MERGER
    # A ministry whose name continues keeps its code, even when it absorbed others.
    assert {"BTC", "BNV", "BXD", "BKHCN"} <= before & after
    assert len(_codes(TODAY, "ministry")) == 16


def test_every_successor_chain_ends_at_a_unit_valid_today() -> None:
    for agency in REGISTRY:
        final = REGISTRY.get(REGISTRY.final_successor(agency.code))
        assert final is not None and final.is_valid_on(TODAY), agency.code


def test_final_successor_on_a_day_is_the_unit_carrying_the_figures_that_day() -> None:
    ha_nam = next(a.code for a in REGISTRY if a.short_name == "Hà Nam")
    ha_noi = next(a.code for a in REGISTRY if a.short_name == "Hà Nội")
    new_ninh_binh = REGISTRY.get(ha_nam).successor  # type: ignore[union-attr]
    assert REGISTRY.final_successor(ha_nam, on=LAST_DAY_OF_63) == ha_nam
    assert REGISTRY.final_successor(ha_nam, on=FIRST_DAY_OF_34) == new_ninh_binh
    assert REGISTRY.final_successor(ha_nam, on=TODAY) == new_ninh_binh == REGISTRY.final_successor(ha_nam)
    assert REGISTRY.final_successor(ha_noi, on=TODAY) == ha_noi
    assert REGISTRY.final_successor("BKHDT", on=LAST_DAY_BEFORE_MINISTRY_MERGER) == "BKHDT"
    assert REGISTRY.final_successor("BKHDT", on=FIRST_DAY_AFTER_MINISTRY_MERGER) == "BTC"
    assert REGISTRY.successor_chain("BTNMT") == ["BTNMT", "BNNMT"]
    with pytest.raises(KeyError):
        REGISTRY.successor_chain("NOPE")


def test_names_are_nfc_vietnamese_with_diacritics() -> None:
    names = {a.name for a in REGISTRY}
    short_names = {a.short_name for a in REGISTRY}
    assert {"Hà Nam", "Đà Nẵng", "Bộ Công Thương", "Thành phố Hồ Chí Minh", "Ủy ban Dân tộc"} <= names
    assert {"TP. Hồ Chí Minh", "Đắk Lắk", "Bà Rịa - Vũng Tàu", "Bộ Văn hóa, Thể thao và Du lịch"} <= short_names
    every_label = names | short_names | {alias for a in REGISTRY for alias in a.aliases}
    assert all(unicodedata.is_normalized("NFC", label) for label in every_label)
    # Diacritics were not lost on the way in: only the provinces whose names have none are plain ASCII.
    ascii_names = {a.name for a in REGISTRY if a.name.isascii()}
    assert ascii_names == {"Kon Tum", "Long An", "An Giang", "Gia Lai"}
    hue = next(a for a in REGISTRY if a.name == "Huế")
    assert "Thừa Thiên Huế" in hue.aliases and hue.valid_to is None


def test_names_typed_in_nfd_are_normalised_on_load() -> None:
    document = _document()
    document["agencies"][0]["name"] = unicodedata.normalize("NFD", "Bộ Công an")
    agency = next(iter(Registry.from_document(document)))
    assert agency.name == "Bộ Công an" and unicodedata.is_normalized("NFC", agency.name)


def test_a_unit_renamed_without_a_new_code_bears_each_name_in_its_time() -> None:
    """Thừa Thiên Huế became the city of Huế on 2025-01-01 (Nghị quyết 175/2024/QH15), code T46."""
    hue = REGISTRY.get("T46")
    assert hue is not None and hue.name == "Huế"
    assert (hue.named_on(date(2024, 12, 31)).name, hue.named_on(date(2024, 12, 31)).name_en) == ("Thừa Thiên Huế", "Thua Thien Hue")
    assert hue.named_on(date(2025, 1, 1)) == hue
    assert hue.named_on(date(2024, 12, 31)).code == "T46" and hue.named_on(date(2020, 1, 1)).block == "province"
    renamed = {agency.code for agency in REGISTRY if agency.former_names}
    assert renamed == {"T46"}
    assert all(agency.named_on(date(2000, 1, 1)) == agency for agency in REGISTRY if agency.code not in renamed)


# --- consistency checks on load ------------------------------------------------------------------------


def _entry(document: dict[str, Any], code: str) -> dict[str, Any]:
    return next(entry for entry in document["agencies"] if entry["code"] == code)


def _break_duplicate(document: dict[str, Any]) -> None:
    document["agencies"].append(copy.deepcopy(document["agencies"][0]))


def _break_dangling_successor(document: dict[str, Any]) -> None:
    _entry(document, "BKHDT")["successor"] = "NOPE"


def _break_gap_before_successor(document: dict[str, Any]) -> None:
    _entry(document, "BKHDT")["valid_to"] = "2025-01-31"
    _entry(document, "BKHDT")["successor"] = "BNNMT"


def _break_successor_without_end(document: dict[str, Any]) -> None:
    _entry(document, "BTC")["successor"] = "BNNMT"


def _break_reversed_dates(document: dict[str, Any]) -> None:
    _entry(document, "BNNMT")["valid_to"] = "2025-02-01"


def _break_block(document: dict[str, Any]) -> None:
    _entry(document, "BCT")["block"] = "national"


def _break_code(document: dict[str, Any]) -> None:
    _entry(document, "BCT")["code"] = "Bộ CT"


def _break_source(document: dict[str, Any]) -> None:
    _entry(document, "BCT")["source"] = ["nowhere"]


def _break_date(document: dict[str, Any]) -> None:
    _entry(document, "BCT")["valid_from"] = "2025-W27-2"


def _break_missing_field(document: dict[str, Any]) -> None:
    del _entry(document, "BCT")["block"]


def _break_cross_block_successor(document: dict[str, Any]) -> None:
    _entry(document, "BKHDT")["successor"] = "T01"


def _break_former_names_order(document: dict[str, Any]) -> None:
    former = _entry(document, "T46")["former_names"]
    former.append({**former[0], "until": "2020-01-01"})


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_break_duplicate, "twice"),
        (_break_dangling_successor, "NOPE"),
        (_break_gap_before_successor, "not valid on 2025-02-01"),
        (_break_successor_without_end, "no valid_to"),
        (_break_reversed_dates, "before valid_from"),
        (_break_block, "national"),
        (_break_code, "ASCII"),
        (_break_source, "nowhere"),
        (_break_date, "YYYY-MM-DD"),
        (_break_missing_field, "missing field block"),
        (_break_cross_block_successor, "another block"),
        (_break_former_names_order, "oldest first"),
    ],
)
def test_inconsistent_data_is_rejected_on_load(tmp_path: Path, breakage: Any, message: str) -> None:
    document = _document()
    breakage(document)
    broken = tmp_path / "registry.json"
    broken.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(RegistryError, match=re.escape(message)):
        Registry.load(broken)


def test_unreadable_registry_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError):
        Registry.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(RegistryError, match="not valid JSON"):
        Registry.load(tmp_path / "bad.json")


# --- no double counting across the reorganisations ----------------------------------------------------


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
@example(LAST_DAY_BEFORE_MINISTRY_MERGER)
@example(FIRST_DAY_AFTER_MINISTRY_MERGER)
@example(LAST_DAY_OF_63)
@example(FIRST_DAY_OF_34)
def test_no_day_counts_a_unit_and_a_unit_formed_from_it(day: date) -> None:
    """Two units valid on the same day are never one formed from the other. The only successor that
    may be valid beside its predecessor is a continuing ministry that absorbed it (Bộ Tài chính beside
    Bộ Kế hoạch và Đầu tư until 2025-02-28): it was already valid when the predecessor began, so its
    own dossiers are other dossiers. Provinces have no such case at all."""
    valid = REGISTRY.valid_on(day)
    codes = {agency.code for agency in valid}
    for agency in valid:
        for later in REGISTRY.successor_chain(agency.code)[1:]:
            if later not in codes:
                continue
            absorber = REGISTRY.get(later)
            assert absorber is not None and agency.block == "ministry", (day, agency.code, later)
            assert absorber.is_valid_on(agency.valid_from), (day, agency.code, later)


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
@example(LAST_DAY_BEFORE_MINISTRY_MERGER)
@example(FIRST_DAY_AFTER_MINISTRY_MERGER)
@example(LAST_DAY_OF_63)
@example(FIRST_DAY_OF_34)
def test_every_ended_unit_has_its_figures_carried_by_a_unit_valid_that_day(day: date) -> None:
    valid = {agency.code for agency in REGISTRY.valid_on(day)}
    for agency in REGISTRY:
        if agency.valid_from <= day and agency.code not in valid:
            assert REGISTRY.final_successor(agency.code, on=day) in valid, (agency.code, day)


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
@example(LAST_DAY_BEFORE_MINISTRY_MERGER)
@example(FIRST_DAY_AFTER_MINISTRY_MERGER)
@example(LAST_DAY_OF_63)
@example(FIRST_DAY_OF_34)
def test_each_valid_province_of_a_day_is_carried_by_exactly_one_unit_today(day: date) -> None:
    """Restating a day's provincial figures onto today's units partitions them: the 63 (or 34) units
    of that day map onto the 34 of today, each of today's receiving at least its own or a predecessor's."""
    provinces = [agency.code for agency in REGISTRY.valid_on(day) if agency.block == "province"]
    targets = {REGISTRY.final_successor(code, on=TODAY) for code in provinces}
    assert targets == _codes(TODAY, "province")


# --- rendering -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", [None, LAST_DAY_OF_63, FIRST_DAY_OF_34])
def test_render_json_round_trips(on: date | None) -> None:
    listed = json.loads(render_registry(REGISTRY, "json", on=on))
    expected = [agency for agency in REGISTRY if on is None or agency.is_valid_on(on)]
    assert listed == [agency.to_json() for agency in expected]
    if on is None:
        assert listed == REGISTRY.to_json_list()
    for row in listed:
        assert set(row) >= {"code", "name", "block", "valid_from", "valid_to", "successor"}
        agency = REGISTRY.get(row["code"])
        assert agency is not None
        assert date.fromisoformat(row["valid_from"]) == agency.valid_from
        assert row["valid_to"] is None or date.fromisoformat(row["valid_to"]) == agency.valid_to


def test_render_json_keeps_vietnamese_letters() -> None:
    text = render_registry(REGISTRY, "json")
    assert '"name": "Bộ Công Thương"' in text and "\\u" not in text


@pytest.mark.parametrize("on", [None, LAST_DAY_OF_63, FIRST_DAY_OF_34])
def test_table_has_a_header_and_one_line_per_agency(on: date | None) -> None:
    lines = render_registry(REGISTRY, "table", on=on).splitlines()
    expected = [agency for agency in REGISTRY if on is None or agency.is_valid_on(on)]
    assert lines[0].split() == ["code", "block", "name", "valid_from", "valid_to", "successor"]
    assert len(lines) == 1 + len(expected)
    assert [line.split()[0] for line in lines[1:]] == [agency.code for agency in expected]


def test_table_columns_line_up_on_screen_after_vietnamese_names() -> None:
    """valid_from starts at the same screen column on every row, measured in display width."""
    lines = render_registry(REGISTRY, "table").splitlines()
    header_column = display_width(lines[0][: lines[0].index("valid_from")])
    for line in lines[1:]:
        match = re.search(r"\d{4}-\d{2}-\d{2}", line)
        assert match is not None and display_width(line[: match.start()]) == header_column, line


def test_table_aligns_names_typed_in_nfd() -> None:
    document = _document()
    for entry in document["agencies"]:
        entry["name"] = unicodedata.normalize("NFD", entry["name"])
    registry = Registry.from_document(document)
    assert render_registry(registry, "table") == render_registry(REGISTRY, "table")


def test_display_width_counts_screen_columns() -> None:
    assert display_width("Đà Nẵng") == 7
    assert display_width(unicodedata.normalize("NFD", "Đà Nẵng")) == 7
    assert display_width("東京") == 4


def test_unknown_render_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="xml"):
        render_registry(REGISTRY, "xml")


def test_by_block_splits_the_registry() -> None:
    assert len(REGISTRY.by_block("ministry")) + len(REGISTRY.by_block("province")) == len(REGISTRY)
    with pytest.raises(ValueError):
        REGISTRY.by_block("national")


# --- the command line ----------------------------------------------------------------------------------


def test_registry_list_json_is_the_contract_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == REGISTRY.to_json_list()
    assert main(["registry", "list", "--format", "json", "--on", "2025-07-01"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(REGISTRY.valid_on(FIRST_DAY_OF_34))


def test_a_bad_flag_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "list", "--format", "xml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emc: error:")
