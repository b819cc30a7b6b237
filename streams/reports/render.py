"""Rendering a `ReportData` as text, JSON or HTML: pure functions, no I/O.

Vietnamese by default: names as the registry writes them (with diacritics) and Vietnamese
number formatting, decimal comma and thousands dot ("68,54 %", "115.665"); English uses the
registry's English names, decimal point and thousands comma ("68.54 %", "115,665"). Rates are
rounded half up to two places from the exact fraction. A unit with nothing resolved has no
rate: it is shown as "no figure", never as 0 %. Every output says which view it uses.
"""

from __future__ import annotations

import html
import json
import textwrap
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from streams.domain.control import Maintenance
from streams.domain.instants import VN_TZ, utc_datetime_of_us
from streams.domain.rankings import (
    STATUS_LISTS,
    MaintainedUnit,
    RankedUnit,
    StatusUnit,
    UnitFigures,
    ranking_json,
)
from streams.reports.gather import BlockSection, ReportData, Totals
from streams.reports.table import table_lines

LANGS = ("vi", "en")
FORMATS = ("text", "json", "html")

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")

_T = {
    "vi": {
        "title": "BÁO CÁO TỶ LỆ HỒ SƠ TRỰC TUYẾN TOÀN TRÌNH",
        "period": "Kỳ báo cáo",
        "view": "Cách thể hiện",
        "as-was": "theo đơn vị tại thời điểm phát sinh số liệu (as-was)",
        "restated": "quy đổi về đơn vị kế thừa sau sắp xếp, theo các đơn vị ngày {day} (restated)",
        "generated": "Thời điểm lập",
        "national": "Toàn quốc",
        "ministry": "Khối bộ, ngành",
        "province": "Khối địa phương",
        "target": "chỉ tiêu",
        "met": "đạt",
        "not_met": "chưa đạt",
        "dossiers": "hồ sơ toàn trình / đã giải quyết",
        "top_ministry": "{n} bộ, ngành dẫn đầu",
        "top_province": "{n} tỉnh, thành phố dẫn đầu",
        "ranking_ministry": "Xếp hạng khối bộ, ngành",
        "ranking_province": "Xếp hạng khối địa phương",
        "rank": "Hạng",
        "code": "Mã",
        "unit": "Đơn vị",
        "rate": "Tỷ lệ",
        "full_online": "Toàn trình",
        "resolved": "Đã giải quyết",
        "agency_target": "Chỉ tiêu",
        "under": "Đơn vị dưới {t}",
        "no_figure": "Chưa có hồ sơ được giải quyết trong kỳ (không có tỷ lệ)",
        "silent": "Mất kết nối, không gửi dữ liệu (hiện tại)",
        "never": "Chưa từng kết nối (hiện tại)",
        "maintenance": "Đang bảo trì hệ thống (hiện tại)",
        "maintained": "Tạm ngừng kết nối để bảo trì, nâng cấp hệ thống trong kỳ",
        "window": "từ {start} đến {until}",
        "none": "Không có",
        "no_rate": "không có số liệu",
        "no_data": "Không có số liệu cho kỳ {period}: chưa có hồ sơ nào được ghi nhận.",
        "merged": "gồm",
        "chart": "Biểu đồ tỷ lệ toàn trình",
        "finality": "Tình trạng số liệu",
        "finality_open": "kỳ chưa kết thúc, số liệu còn thay đổi",
        "finality_closed": "kỳ đã kết thúc, chưa công bố",
        "finality_published": "đã công bố (phiên bản {v})",
        "finality_restated": "đã điều chỉnh sau khi công bố (phiên bản {v})",
        "rates": "Ba tỷ lệ toàn trình",
        "scope": "Phạm vi",
        "rate_1": "(1) DVC toàn trình / tổng số TTHC",
        "rate_2": "(2) DVCTT toàn trình có hồ sơ trực tuyến / TTHC có hồ sơ",
        "rate_3": "(3) Hồ sơ trực tuyến toàn trình / đã giải quyết",
        "not_in_catalogue": "TTHC có hồ sơ ngoài danh mục",
        "portal": "Nộp qua Cổng DVCQG",
        "portal_share": "Tỷ lệ qua Cổng DVCQG",
    },
    "en": {
        "title": "FULLY-ONLINE DOSSIER RATE REPORT",
        "period": "Period",
        "view": "View",
        "as-was": "agencies as they were when the figures arose (as-was)",
        "restated": "restated onto successor units, as they stand on {day} (restated)",
        "generated": "Generated at",
        "national": "National",
        "ministry": "Ministries and sectors",
        "province": "Provinces",
        "target": "target",
        "met": "met",
        "not_met": "not met",
        "dossiers": "fully-online / resolved dossiers",
        "top_ministry": "Top {n} ministries and sectors",
        "top_province": "Top {n} provinces",
        "ranking_ministry": "Ranking of ministries and sectors",
        "ranking_province": "Ranking of provinces",
        "rank": "Rank",
        "code": "Code",
        "unit": "Unit",
        "rate": "Rate",
        "full_online": "Fully online",
        "resolved": "Resolved",
        "agency_target": "Target",
        "under": "Units under {t}",
        "no_figure": "No dossier resolved in the period (no rate)",
        "silent": "Silent, sending no data (now)",
        "never": "Never connected (now)",
        "maintenance": "In maintenance (now)",
        "maintained": "Disconnected for declared maintenance during the period",
        "window": "from {start} until {until}",
        "none": "None",
        "no_rate": "no figure",
        "no_data": "No data for period {period}: no dossier has been recorded.",
        "merged": "includes",
        "chart": "Fully-online rate chart",
        "finality": "Status of the figures",
        "finality_open": "period still open, figures may change",
        "finality_closed": "period closed, not published",
        "finality_published": "published (version {v})",
        "finality_restated": "restated after publication (version {v})",
        "rates": "The three toàn trình rates",
        "scope": "Scope",
        "rate_1": "(1) full-online services / all procedures",
        "rate_2": "(2) full-online services used online / procedures with dossiers",
        "rate_3": "(3) fully-online dossiers / resolved",
        "not_in_catalogue": "Procedures with dossiers not in the catalogue",
        "portal": "Via the national portal",
        "portal_share": "National portal share",
    },
}


# -- numbers ---------------------------------------------------------------------------------


def format_int(n: int, lang: str) -> str:
    text = f"{n:,}"
    return text.replace(",", ".") if lang == "vi" else text


def format_percent(rate: Fraction | None, lang: str) -> str:
    """'68,54 %' (vi) or '68.54 %' (en), rounded half up; the 'no figure' text when undefined."""
    if rate is None:
        return _T[lang]["no_rate"]
    value = (Decimal(rate.numerator) * 100 / Decimal(rate.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    text = f"{value:,.2f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return f"{text} %"


def format_period(data: ReportData, lang: str) -> str:
    p = data.period
    year = p.first_day.year
    if p.window == "year":
        return f"năm {year}" if lang == "vi" else str(year)
    if p.window == "quarter":
        q = (p.first_day.month - 1) // 3 + 1
        return f"quý {_ROMAN[q]}/{year}" if lang == "vi" else f"Q{q} {year}"
    if p.window == "month":
        return f"tháng {p.first_day.month:02d}/{year}" if lang == "vi" else f"{_MONTHS_EN[p.first_day.month - 1]} {year}"
    d = p.first_day
    return f"ngày {d.day:02d}/{d.month:02d}/{year}" if lang == "vi" else f"{d.day} {_MONTHS_EN[d.month - 1]} {year}"


def format_view(data: ReportData, lang: str) -> str:
    if data.restated_on is None:
        return _T[lang]["as-was"]
    day = data.restated_on
    shown = f"{day.day:02d}/{day.month:02d}/{day.year}" if lang == "vi" else day.isoformat()
    return _T[lang]["restated"].format(day=shown)


def format_finality(data: ReportData, lang: str) -> str | None:
    if data.finality is None:
        return None
    return _T[lang][f"finality_{data.finality.state}"].format(v=data.finality.version)


def _local_time(data: ReportData) -> str:
    """When the report was made, in Asia/Ho_Chi_Minh time."""
    return data.generated_at.astimezone(VN_TZ).isoformat(timespec="seconds")


def _window_text(window: Maintenance, lang: str) -> str:
    """`từ 02/12/2024 00:00 đến 22/12/2024 00:00 (nâng cấp hệ thống)`, Asia/Ho_Chi_Minh time."""
    def local(us: int) -> str:
        moment = utc_datetime_of_us(us).astimezone(VN_TZ)
        return moment.strftime("%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M")
    span = _T[lang]["window"].format(start=local(window.start_us), until=local(window.until_us))
    return f"{span} ({window.reason})"


def _maintained_lines(units: tuple[MaintainedUnit, ...], lang: str) -> list[str]:
    if not units:
        return [f"  {_T[lang]['none']}"]
    return [f"  {_name(u, lang)} ({u.code}): {'; '.join(_window_text(w, lang) for w in u.windows)}" for u in units]


def _name(unit: UnitFigures | StatusUnit | MaintainedUnit, lang: str) -> str:
    return unit.name if lang == "vi" else unit.name_en


def _totals_line(totals: Totals, lang: str) -> str:
    t = _T[lang]
    line = (f"{t[totals.scope]}: {format_percent(totals.rate, lang)} "
            f"({format_int(totals.full_online, lang)} / {format_int(totals.resolved, lang)} {t['dossiers']})")
    if totals.target is not None:
        line += f"; {t['target']} {format_percent(totals.target, lang)}"
        if totals.target_met is not None:
            line += f": {t['met'] if totals.target_met else t['not_met']}"
    return line


def _rates_header(lang: str) -> list[str]:
    t = _T[lang]
    return [t["scope"], t["rate_1"], t["rate_2"], t["rate_3"], t["not_in_catalogue"], t["portal"], t["portal_share"]]


def _rates_row(totals: Totals, lang: str) -> list[str]:
    """The bulletin's three toàn trình rates side by side, with the national portal's share."""
    return [_T[lang][totals.scope], format_percent(totals.full_online_procedures_rate, lang),
            format_percent(totals.full_online_procedures_used_rate, lang), format_percent(totals.rate, lang),
            format_int(totals.counts.get("procedures_not_in_catalogue", 0), lang),
            format_int(totals.counts.get("received_national_portal", 0), lang),
            format_percent(totals.national_portal_rate, lang)]


# -- text ------------------------------------------------------------------------------------


_NUMBER_COLUMNS = frozenset({0, 3, 4, 5, 6})  # rank, rate, full online, resolved, target: right-aligned


def _ranked_rows(entries: tuple[RankedUnit, ...], section: BlockSection, lang: str) -> list[list[str]]:
    rows = []
    for entry in entries:
        unit = entry.unit
        name = _name(unit, lang)
        if unit.merged_from:
            name += f" ({_T[lang]['merged']} {', '.join(unit.merged_from)})"
        target = section.agency_targets.get(unit.code)
        rows.append([str(entry.rank), unit.code, name, format_percent(unit.rate, lang),
                     format_int(unit.full_online, lang), format_int(unit.resolved, lang),
                     format_percent(target, lang) if target is not None else ""])
    return rows


def _unit_lines(units: tuple[UnitFigures | StatusUnit, ...], lang: str) -> list[str]:
    if not units:
        return [f"  {_T[lang]['none']}"]
    text = ", ".join(f"{_name(u, lang)} ({u.code})" for u in units)
    return textwrap.wrap(text, width=100, initial_indent="  ", subsequent_indent="  ", break_long_words=False)


def _threshold_text(section: BlockSection, lang: str) -> str:
    return format_percent(section.ranking.threshold, lang).replace(",00", "").replace(".00", "")


def render_text(data: ReportData, lang: str = "vi") -> str:
    t = _T[lang]
    out = [
        t["title"],
        f"{t['period']}: {format_period(data, lang)} ({data.period.text})",
        f"{t['view']}: {format_view(data, lang)}",
        f"{t['generated']}: {_local_time(data)}",
    ]
    if (finality := format_finality(data, lang)) is not None:
        out.append(f"{t['finality']}: {finality}")
    out.append("")
    if not data.has_data:
        out += [t["no_data"].format(period=data.period.text), ""]
    out.append(_totals_line(data.national, lang))
    for section in data.blocks:
        out.append(_totals_line(section.totals, lang))
    out += ["", f"{t['rates']}:"]
    out += table_lines(_rates_header(lang), [_rates_row(data.national, lang), *(_rates_row(s.totals, lang) for s in data.blocks)],
                       {1, 2, 3, 4, 5, 6}, indent="  ")
    header = [t["rank"], t["code"], t["unit"], t["rate"], t["full_online"], t["resolved"], t["agency_target"]]
    for section in data.blocks:
        ranking = section.ranking
        block = ranking.block
        out += ["", f"== {t[block]} ==", "", t[f"top_{block}"].format(n=data.top_n) + ":"]
        top = ranking.top(data.top_n)
        out += table_lines(header, _ranked_rows(top, section, lang), _NUMBER_COLUMNS, indent="  ") if top else [f"  {t['none']}"]
        under = ranking.under_threshold
        out += ["", t["under"].format(t=_threshold_text(section, lang)) + f" ({len(under)}):"]
        out += table_lines(header, _ranked_rows(under, section, lang), _NUMBER_COLUMNS, indent="  ") if under else [f"  {t['none']}"]
        out += ["", f"{t['no_figure']} ({len(ranking.no_figure)}):", *_unit_lines(ranking.no_figure, lang)]
        out += ["", f"{t['maintained']} ({len(ranking.maintained)}):", *_maintained_lines(ranking.maintained, lang)]
        for status in STATUS_LISTS:
            units = ranking.with_status(status)
            out += ["", f"{t[status]} ({len(units)}):", *_unit_lines(units, lang)]
    return "\n".join(out) + "\n"


# -- JSON ------------------------------------------------------------------------------------


def _number(rate: Fraction | None) -> float | None:
    return None if rate is None else round(float(rate), 6)


def _totals_json(totals: Totals) -> dict:
    counts = totals.counts
    return {"full_online": totals.full_online, "resolved": totals.resolved, "rate": _number(totals.rate),
            "target": _number(totals.target), "target_met": totals.target_met,
            "full_online_procedures_rate": _number(totals.full_online_procedures_rate),
            "full_online_procedures_used_rate": _number(totals.full_online_procedures_used_rate),
            "procedures_in_force": counts.get("procedures_in_force", 0),
            "full_online_procedures_in_force": counts.get("full_online_procedures_in_force", 0),
            "procedures_with_dossiers": counts.get("procedures_with_dossiers", 0),
            "full_online_procedures_with_online_dossiers": counts.get("full_online_procedures_with_online_dossiers", 0),
            "procedures_not_in_catalogue": counts.get("procedures_not_in_catalogue", 0),
            "received_online": counts.get("received_online", 0),
            "received_national_portal": counts.get("received_national_portal", 0),
            "national_portal_rate": _number(totals.national_portal_rate)}


def report_json(data: ReportData) -> dict:
    blocks = {}
    for section in data.blocks:
        doc = ranking_json(section.ranking, data.top_n)
        doc.pop("block")
        doc.pop("period")
        doc.pop("view")
        blocks[section.ranking.block] = {
            **_totals_json(section.totals),
            **doc,
            "agency_targets": {code: _number(t) for code, t in sorted(section.agency_targets.items())},
        }
    return {
        "period": data.period.text,
        "window": data.period.window,
        "view": data.view,
        "restated_on": data.restated_on.isoformat() if data.restated_on else None,
        "generated_at": _local_time(data),
        "has_data": data.has_data,
        "finality": None if data.finality is None else data.finality.state,
        "published_version": None if data.finality is None else data.finality.version,
        "national": _totals_json(data.national),
        "blocks": blocks,
    }


def render_json(data: ReportData, lang: str = "vi") -> str:
    return json.dumps({**report_json(data), "lang": lang}, ensure_ascii=False, indent=2) + "\n"


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #c62828}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#444;margin:2px 0}
.totals{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{border:1px solid #ccc;border-radius:6px;padding:10px 14px;min-width:240px;background:#fafafa}
.card .rate{font-size:24px;font-weight:bold}.met{color:#2e7d32}.not-met{color:#c62828}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
.nodata{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px}
ul{margin:4px 0 10px}ul.units{columns:4}
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _svg_chart(section: BlockSection, lang: str) -> str:
    """A horizontal bar per ranked unit, with the block target and the threshold as lines."""
    entries = section.ranking.ranking
    if not entries:
        return ""
    label_w, bar_w, row_h, top = 230, 560, 20, 24
    height = top + row_h * len(entries) + 10
    width = label_w + bar_w + 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_esc(_T[lang]["chart"])}" font-size="12">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, entry in enumerate(entries):
        unit = entry.unit
        y = top + i * row_h
        rate = unit.rate or Fraction(0)
        w = float(rate) * bar_w
        below = rate < section.ranking.threshold
        color = "#c62828" if below else "#1565c0"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_esc(entry.rank)}. {_esc(_name(unit, lang))}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{_esc(format_percent(unit.rate, lang))}</text>')
    for value, color, label in ((section.totals.target, "#2e7d32", _T[lang]["target"]),
                                (section.ranking.threshold, "#c62828", "")):
        if value is None:
            continue
        x = label_w + float(value) * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="{color}" '
                     f'stroke-dasharray="4 3" stroke-width="1.5"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="{color}">'
                     f'{_esc(label)} {_esc(format_percent(value, lang))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(entries: tuple[RankedUnit, ...], section: BlockSection, lang: str, css_class: str) -> str:
    t = _T[lang]
    if not entries:
        return f"<p>{_esc(t['none'])}</p>"
    head = "".join(f"<th>{_esc(t[k])}</th>" for k in ("rank", "code", "unit", "rate", "full_online", "resolved", "agency_target"))
    rows = []
    for row in _ranked_rows(entries, section, lang):
        cells = "".join(f'<td class="num">{_esc(c)}</td>' if i in (0, 3, 4, 5, 6) else f"<td>{_esc(c)}</td>"
                        for i, c in enumerate(row))
        rows.append(f'<tr data-code="{_esc(row[1])}">{cells}</tr>')
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _html_list(units: tuple[UnitFigures | StatusUnit, ...], lang: str) -> str:
    if not units:
        return f"<p>{_esc(_T[lang]['none'])}</p>"
    return '<ul class="units">' + "".join(f"<li>{_esc(_name(u, lang))} ({_esc(u.code)})</li>" for u in units) + "</ul>"


def _html_maintained(units: tuple[MaintainedUnit, ...], lang: str) -> str:
    if not units:
        return f"<p>{_esc(_T[lang]['none'])}</p>"
    items = "".join(f'<li data-code="{_esc(u.code)}">{_esc(_name(u, lang))} ({_esc(u.code)}): '
                    f"{_esc('; '.join(_window_text(w, lang) for w in u.windows))}</li>" for u in units)
    return f'<ul class="maintained">{items}</ul>'


def _html_card(totals: Totals, lang: str) -> str:
    t = _T[lang]
    status = ""
    if totals.target_met is not None:
        status = (f'<div class="{"met" if totals.target_met else "not-met"}">'
                  f'{_esc(t["met"] if totals.target_met else t["not_met"])}</div>')
    target = f"<div>{_esc(t['target'])} {_esc(format_percent(totals.target, lang))}</div>" if totals.target is not None else ""
    return (f'<div class="card" data-scope="{_esc(totals.scope)}"><div>{_esc(t[totals.scope])}</div>'
            f'<div class="rate">{_esc(format_percent(totals.rate, lang))}</div>'
            f"<div>{_esc(format_int(totals.full_online, lang))} / {_esc(format_int(totals.resolved, lang))} "
            f"{_esc(t['dossiers'])}</div>{target}{status}</div>")


def render_html(data: ReportData, lang: str = "vi") -> str:
    """A self-contained page: inline CSS and SVG, no script, no external resource."""
    t = _T[lang]
    body = [
        f"<h1>{_esc(t['title'])}</h1>",
        f'<p class="meta">{_esc(t["period"])}: <b>{_esc(format_period(data, lang))}</b> ({_esc(data.period.text)})</p>',
        f'<p class="meta" data-view="{_esc(data.view)}">{_esc(t["view"])}: {_esc(format_view(data, lang))}</p>',
        f'<p class="meta">{_esc(t["generated"])}: {_esc(_local_time(data))}</p>',
    ]
    if (finality := format_finality(data, lang)) is not None:
        body.append(f'<p class="meta" data-finality="{_esc(data.finality.state)}">{_esc(t["finality"])}: {_esc(finality)}</p>')
    if not data.has_data:
        body.append(f'<p class="nodata">{_esc(t["no_data"].format(period=data.period.text))}</p>')
    body.append('<div class="totals">' + _html_card(data.national, lang)
                + "".join(_html_card(s.totals, lang) for s in data.blocks) + "</div>")
    rows = [_rates_row(data.national, lang), *(_rates_row(s.totals, lang) for s in data.blocks)]
    body.append(f'<section id="rates"><h2>{_esc(t["rates"])}</h2><table class="rates"><tr>'
                + "".join(f"<th>{_esc(h)}</th>" for h in _rates_header(lang)) + "</tr>"
                + "".join("<tr>" + f"<td>{_esc(row[0])}</td>" + "".join(f'<td class="num">{_esc(c)}</td>' for c in row[1:])
                          + "</tr>" for row in rows)
                + "</table></section>")
    for section in data.blocks:
        ranking = section.ranking
        block = ranking.block
        body.append(f'<section id="{_esc(block)}"><h2>{_esc(t[block])}</h2>')
        body.append(f"<h3>{_esc(t[f'top_{block}'].format(n=data.top_n))}</h3>")
        body.append(_html_table(ranking.top(data.top_n), section, lang, "top"))
        body.append(f"<h3>{_esc(t[f'ranking_{block}'])}</h3>")
        body.append(_svg_chart(section, lang))
        body.append(_html_table(ranking.ranking, section, lang, "ranking"))
        body.append(f"<h3>{_esc(t['under'].format(t=_threshold_text(section, lang)))}</h3>")
        body.append(_html_table(ranking.under_threshold, section, lang, "under"))
        body.append(f"<h3>{_esc(t['no_figure'])}</h3>" + _html_list(ranking.no_figure, lang))
        body.append(f"<h3>{_esc(t['maintained'])}</h3>" + _html_maintained(ranking.maintained, lang))
        for status in STATUS_LISTS:
            body.append(f"<h3>{_esc(t[status])}</h3>" + _html_list(ranking.with_status(status), lang))
        body.append("</section>")
    title = f"{t['title']} — {format_period(data, lang)}"
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def render(data: ReportData, fmt: str, lang: str) -> str:
    if fmt == "text":
        return render_text(data, lang)
    if fmt == "json":
        return render_json(data, lang)
    if fmt == "html":
        return render_html(data, lang)
    raise ValueError(f"unknown format {fmt!r}")
