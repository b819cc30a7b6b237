"""`emc report` rendering (pure) and the CLI's handling of bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from fractions import Fraction
from html.parser import HTMLParser

import pytest

from streams.cli.main import main
from streams.domain.control import make_maintenance
from streams.domain.periods import parse_period
from streams.domain.rankings import block_rankings
from streams.domain.registry import Registry
from streams.reports.gather import BlockSection, ReportData, Totals
from streams.reports.render import (
    format_int,
    format_percent,
    render_html,
    render_json,
    render_text,
)

REGISTRY = Registry.load()
TODAY = date(2026, 1, 15)


def test_vietnamese_and_english_number_formatting() -> None:
    assert format_int(115_665, "vi") == "115.665" and format_int(115_665, "en") == "115,665"
    assert format_int(1_234_567, "vi") == "1.234.567" and format_int(12, "vi") == "12"
    assert format_percent(Fraction(6854, 10_000), "vi") == "68,54 %"
    assert format_percent(Fraction(6854, 10_000), "en") == "68.54 %"
    assert format_percent(Fraction(1, 8), "vi") == "12,50 %"  # 12.5 exactly
    assert format_percent(Fraction(1, 800), "en") == "0.13 %"  # 0.125 rounds half up
    assert format_percent(Fraction(2, 3), "en") == "66.67 %"
    assert format_percent(Fraction(1), "vi") == "100,00 %"
    assert format_percent(None, "vi") == "không có số liệu" and format_percent(None, "en") == "no figure"


def _data(view: str = "as-was", has_data: bool = True) -> ReportData:
    counts = {"T01": {"full_online": 115_665, "resolved": 168_751}, "T35": {"full_online": 1, "resolved": 1},
              "T36": {"full_online": 0, "resolved": 3}, "T04": {"received": 2},
              "BCT": {"full_online": 5, "resolved": 9}, "BHXH": {"full_online": 1, "resolved": 1}}
    statuses = {"T04": "never", "T11": "maintenance", "T12": "silent"}
    windows = {"T12": [make_maintenance(REGISTRY, "T12", "2025-06-10T08:00:00+07:00", "2025-06-12T17:30:00+07:00",
                                        "nâng cấp hệ thống", "2025-06-01T00:00:00Z")],
               # ended the day before the period: not listed
               "T11": [make_maintenance(REGISTRY, "T11", "2025-05-20T00:00:00+07:00", "2025-06-01T00:00:00+07:00",
                                        "x", "2025-05-01T00:00:00Z")]}
    rankings = block_rankings(REGISTRY, "2025-06", counts if has_data else {}, statuses, TODAY, view,
                              maintenance_windows=windows)
    def totals(scope: str, codes: list[str]) -> Totals:
        return Totals(scope, sum(counts[c].get("full_online", 0) for c in codes),
                      sum(counts[c].get("resolved", 0) for c in codes), Fraction(7, 10))
    provinces, ministries = ["T01", "T35", "T36", "T04"], ["BCT", "BHXH"]
    return ReportData(
        period=parse_period("2025-06"), view=view, restated_on=TODAY if view == "restated" else None,
        generated_at=datetime(2026, 1, 15, 3, 0, tzinfo=timezone.utc), has_data=has_data, top_n=10,
        national=totals("national", provinces + ministries),
        blocks=(BlockSection(totals("province", provinces), rankings["province"], {"T01": Fraction(4, 5)}),
                BlockSection(totals("ministry", ministries), rankings["ministry"], {})),
    )


def test_text_report_in_vietnamese_says_its_view_and_uses_registry_names() -> None:
    text = render_text(_data())
    assert "tháng 06/2025" in text and "as-was" in text
    assert "Hà Nội" in text and "Hà Nam" in text and "Bảo hiểm xã hội Việt Nam" in text
    assert "68,54 %" in text and "115.665" in text and "168.751" in text
    assert "Cao Bằng (T04)" in text  # received only: listed as no figure
    assert "(T12): từ 10/06/2025 08:00 đến 12/06/2025 17:30 (nâng cấp hệ thống)" in text
    assert "(T11): từ" not in text
    assert "(T12): from 2025-06-10 08:00 until 2025-06-12 17:30 (nâng cấp hệ thống)" in render_text(_data(), "en")
    hanoi = next(line for line in text.splitlines() if "Hà Nội" in line)
    assert "80,00 %" in hanoi  # the agency's registered target
    restated = render_text(_data("restated"), "en")
    assert "restated" in restated and "2026-01-15" in restated and "Ninh Binh (includes T35, T36)" in restated
    assert "Ministry of Finance" in restated  # BHXH restated into BTC


def test_json_report_has_numbers_and_the_full_ranking() -> None:
    doc = json.loads(render_json(_data()))
    assert doc["view"] == "as-was" and doc["period"] == "2025-06" and doc["window"] == "month"
    province = doc["blocks"]["province"]
    assert [(e["rank"], e["code"]) for e in province["ranking"]] == [(1, "T35"), (2, "T01"), (3, "T36")]
    assert province["ranking"][1]["rate"] == round(115_665 / 168_751, 6)
    assert province["ranking"][1]["resolved"] == 168_751
    assert [e["code"] for e in province["under_threshold"]] == ["T36"]
    assert [u["code"] for u in province["never"]] == ["T04"] and [u["code"] for u in province["maintenance"]] == ["T11"]
    assert province["agency_targets"] == {"T01": 0.8}
    assert province["maintenance_in_period"] == [{
        "code": "T12", "name": "Lai Châu", "name_en": "Lai Chau",
        "windows": [{"from": "2025-06-10T08:00:00+07:00", "until": "2025-06-12T17:30:00+07:00",
                     "reason": "nâng cấp hệ thống", "declared_at": "2025-06-01T00:00:00Z"}]}]
    assert doc["blocks"]["ministry"]["maintenance_in_period"] == []
    assert doc["national"]["resolved"] == 168_751 + 1 + 3 + 9 + 1
    assert isinstance(doc["national"]["rate"], float) and doc["national"]["target_met"] is False


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_report_is_self_contained_with_a_chart_and_a_table() -> None:
    page = render_html(_data(), "vi")
    parser = _Collect()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "svg" in tags and "table" in tags and "style" in tags
    assert not {"script", "link", "img", "iframe"} & set(tags)
    assert not any(k in ("src", "href") for _, attrs in parser.tags for k in attrs)
    ranking_rows = [a for t, a in parser.tags if t == "tr" and "data-code" in a]
    assert {"T35", "T01", "T36", "BCT", "BHXH"} <= {a["data-code"] for a in ranking_rows}
    assert '<html lang="vi">' in page and "Hà Nội" in page
    maintained = [a for t, a in parser.tags if t == "li" and "data-code" in a]
    assert [a["data-code"] for a in maintained] == ["T12"]
    empty = render_html(_data(has_data=False), "en")
    assert "No data for period 2025-06" in empty


@pytest.mark.parametrize("argv", [
    ["report", "--period", "2025-13"],
    ["report", "--period", "last-year"],
    ["report", "--period", "2025", "--block", "national"],
    ["report", "--period", "2025", "--format", "pdf"],
    ["report", "--period", "2025", "--lang", "fr"],
    ["report", "--period", "2025", "--view", "merged"],
    ["report", "--period", "2025", "--top", "0"],
    ["report", "--period", "2025", "--restate-on", "2025-02-30"],
    ["report"],
    ["explain", "ZZ9", "2025"],
    ["explain", "T01", "2025-W01"],
    ["explain", "T01", "2025", "--sample", "-1"],
])
def test_bad_report_and_explain_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("emc: error: ") and len(err.strip().splitlines()) == 1


def test_the_three_toan_trinh_rates_side_by_side_national_and_per_block() -> None:
    data = _data()
    figures = {"national": {"procedures_in_force": 1000, "full_online_procedures_in_force": 504,
                            "procedures_with_dossiers": 600, "full_online_procedures_with_online_dossiers": 303,
                            "procedures_not_in_catalogue": 7, "received_online": 400, "received_national_portal": 160},
               "ministry": {"procedures_in_force": 100, "full_online_procedures_in_force": 43},
               "province": {}}

    def with_counts(totals: Totals) -> Totals:
        return Totals(totals.scope, totals.full_online, totals.resolved, totals.target, figures[totals.scope])

    data = ReportData(data.period, data.view, data.restated_on, data.generated_at, data.has_data, data.top_n,
                      with_counts(data.national),
                      tuple(BlockSection(with_counts(s.totals), s.ranking, s.agency_targets) for s in data.blocks))
    text = render_text(data)
    rates_at = text.splitlines().index("Ba tỷ lệ toàn trình:")
    national = text.splitlines()[rates_at + 2]
    cells = ["Toàn quốc", "50,40 %", "50,50 %", format_percent(data.national.rate, "vi"), "7", "160", "40,00 %"]
    positions = [national.index(cell) for cell in cells]
    assert positions == sorted(positions), national  # side by side, in the bulletin's order
    assert "Ba tỷ lệ toàn trình" in text and "(1) DVC toàn trình / tổng số TTHC" in text
    province = next(line for line in text.splitlines() if line.strip().startswith("Khối địa phương")
                    and "không có số liệu" in line)
    assert province.count("không có số liệu") == 3  # no catalogue, no online dossiers: undefined, not 0
    doc = json.loads(render_json(data, "en"))
    assert doc["national"]["full_online_procedures_rate"] == 0.504
    assert doc["national"]["full_online_procedures_used_rate"] == 0.505
    assert doc["national"]["national_portal_rate"] == 0.4 and doc["national"]["received_national_portal"] == 160
    assert doc["blocks"]["ministry"]["full_online_procedures_rate"] == 0.43
    assert doc["blocks"]["province"]["full_online_procedures_used_rate"] is None
    page = render_html(data, "en")
    assert '<section id="rates">' in page and "50.40 %" in page and "(2) full-online services used online" in page
