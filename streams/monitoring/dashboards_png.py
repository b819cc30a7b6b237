"""The national Grafana dashboard as a PNG, for readers without Grafana (README, reports).

    python -m streams.monitoring.dashboards_png --prometheus http://127.0.0.1:9090 \\
        --out docs/images/monitoring-national.png [--window month] [--lookback 30m]

Runs every panel query of the generated national dashboard (streams.monitoring.dashboards) against a
live Prometheus that has the project's recording rules, and draws each panel where the
dashboard places it: gauges as bars against the target, stats as figures, tables as bar
charts or lists, time series over the last `--lookback`. Needs matplotlib (the dev extra).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec

from streams.domain.periods import WINDOWS
from streams.monitoring.dashboards import GRID_WIDTH, LOW_RATE, national_dashboard, substitute

# Grafana's dark-theme-like palette, and the threshold colours it names.
COLORS = {"red": "#e02f44", "orange": "#ff9830", "green": "#56a64b", "text": "#d8d9da", "muted": "#8e8e8e",
          "panel": "#181b1f", "background": "#111217", "grid": "#2c3235"}
SERIES = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0"]
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DURATION = re.compile(r"^(\d+)([smhd])$")
VN_TIME = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PrometheusError(Exception):
    pass


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusError(f"cannot query Prometheus at {self.url}: {exc}") from exc
        if answer.get("status") != "success":
            raise PrometheusError(f"Prometheus refused {params.get('query')!r}: {answer.get('error')}")
        return answer["data"]["result"]

    def instant(self, expr: str, at: datetime) -> list[dict[str, Any]]:
        return self._get("/api/v1/query", {"query": expr, "time": f"{at.timestamp():.3f}"})

    def range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start.timestamp():.3f}",
                                                 "end": f"{end.timestamp():.3f}", "step": f"{step_s:g}"})


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt)
    return text or ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    if unit == "percentunit":
        return f"{value:.{1 if decimals is None else decimals}%}"
    if unit == "s":
        for size, suffix in ((86400, "d"), (3600, "h"), (60, "min")):
            if value >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} s"
    if unit == "ops":
        return f"{value:.3g}/s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _threshold_color(value: float, defaults: dict[str, Any]) -> str:
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def _style(ax: Axes, title: str) -> None:
    ax.set_facecolor(COLORS["panel"])
    ax.set_title(title, loc="left", fontsize=9, color=COLORS["text"], fontweight="bold")
    ax.tick_params(colors=COLORS["muted"], labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(COLORS["grid"])


def _blank(ax: Axes, text: str = "No data") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", color=COLORS["muted"], fontsize=10, transform=ax.transAxes)


def _gauge(ax: Axes, panel: dict[str, Any], results: list[list[dict[str, Any]]]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    series = results[0]
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    if not series:
        _blank(ax)
        return
    value = float(series[0]["value"][1])
    ax.barh([0], [1], color=COLORS["grid"], height=0.5)
    ax.barh([0], [value], color=_threshold_color(value, defaults), height=0.5)
    green = [s["value"] for s in defaults["thresholds"]["steps"] if s["color"] == "green" and s["value"] is not None]
    for target in green:
        ax.axvline(target, color=COLORS["text"], linestyle="--", linewidth=1.5)
        ax.text(target, 0.42, f" target {target:.0%}", color=COLORS["text"], fontsize=8, va="bottom")
    ax.text(0.5, 0.78, format_value(value, "percentunit"), ha="center", va="center", transform=ax.transAxes,
            fontsize=22, color=_threshold_color(value, defaults), fontweight="bold")
    ax.set_ylim(-0.5, 1.3)
    ax.set_xticks([0, 0.5, 1])
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")


def _stat(ax: Axes, panel: dict[str, Any], results: list[list[dict[str, Any]]]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit", "short"), defaults.get("decimals")
    rows = [(legend(t["legendFormat"], s["metric"]), float(s["value"][1]))
            for t, series in zip(panel["targets"], results) for s in series]
    ax.set_xticks([])
    ax.set_yticks([])
    if not rows:
        _blank(ax)
        return
    for i, (name, value) in enumerate(sorted(rows)):
        y = 0.85 - i * 0.8 / max(len(rows), 1)
        ax.text(0.08, y, name, transform=ax.transAxes, color=COLORS["muted"], fontsize=10, va="center")
        ax.text(0.92, y, format_value(value, unit, decimals), transform=ax.transAxes, ha="right",
                color=COLORS["text"], fontsize=14, fontweight="bold", va="center")


def _row_label(metric: dict[str, str]) -> str:
    """'Name (code)' for an agency's row; the other labels (e.g. 'province · on_time') otherwise."""
    if "agency" in metric:
        return f"{metric.get('name', metric['agency'])[:30]} ({metric['agency']})"
    return " · ".join(v for k, v in sorted(metric.items()) if k not in ("__name__", "job", "instance", "window"))


def _matrix(ax: Axes, options: dict[str, str], unit: str, rows: list[tuple[dict[str, str], float]], room: int) -> None:
    """A grouping-to-matrix table as grouped bars: a group per column value, a bar per row value;
    with more row values than colours (a row per agency), a group per row value instead, a bar
    per column value, the first `room` rows and how many more (Grafana scrolls the table)."""
    row_values = sorted({m[options["rowField"]] for m, _ in rows})
    column_values = sorted({m[options["columnField"]] for m, _ in rows})
    cells = {(m[options["rowField"]], m[options["columnField"]]): v for m, v in rows}
    transposed = len(row_values) > len(SERIES)
    groups, bars_per_group = (row_values[:room], column_values) if transposed else (column_values, row_values)
    width = 0.8 / len(bars_per_group)
    for i, bar_value in enumerate(bars_per_group):
        xs = [g + i * width for g in range(len(groups))]
        keys = [(group, bar_value) if transposed else (bar_value, group) for group in groups]
        bars = ax.bar(xs, [cells.get(key, 0.0) for key in keys], width=width * 0.9, align="edge",
                      color=SERIES[i % len(SERIES)], label=bar_value)
        for bar, key in zip(bars, keys):
            if key in cells:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), format_value(cells[key], unit, 0),
                        ha="center", va="bottom", fontsize=5.5 if transposed else 6.5, color=COLORS["text"])
    if transposed:
        ax.set_xticks([g + 0.4 for g in range(len(groups))], groups, fontsize=7)  # agency codes: names would overlap
        if len(row_values) > room:
            ax.text(0.99, 0.97, f"... and {len(row_values) - room} more (Grafana scrolls)", transform=ax.transAxes,
                    ha="right", va="top", color=COLORS["muted"], fontsize=7.5, style="italic")
    else:
        ax.set_xticks([g + 0.4 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylim(0, 1.15 if unit == "percentunit" else max(v for _, v in rows) * 1.15)
    ax.yaxis.set_major_formatter(lambda v, _: format_value(v, unit, 0))
    ax.legend(fontsize=7, loc="upper left" if transposed else "upper right", ncols=len(bars_per_group), framealpha=0.6,
              facecolor=COLORS["panel"], edgecolor=COLORS["grid"], labelcolor=COLORS["text"])


def _table(ax: Axes, panel: dict[str, Any], results: list[list[dict[str, Any]]]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "short")
    transformation = panel["transformations"][0]
    rows = [(s["metric"], float(s["value"][1])) for s in results[0]]
    if not rows:
        _blank(ax)
        return
    # As many rows as the panel shows without scrolling (about 1.4 a grid unit); the rest are counted.
    room = max(5, int(panel["gridPos"]["h"] * 1.4))
    if transformation["id"] == "groupingToMatrix":
        _matrix(ax, transformation["options"], unit, rows, room)
        return
    hide_value = transformation["options"]["excludeByName"].get("Value", False)
    sort = panel["options"].get("sortBy") or []
    rows.sort(key=lambda r: (r[1] if sort else 0, r[0].get("name", "")), reverse=bool(sort and sort[0]["desc"]))
    hidden_rows = len(rows) - room if len(rows) > room else 0
    if hidden_rows and not hide_value:
        rows = rows[:room - 1]
    labels = [_row_label(m) for m, _ in rows]
    if hide_value:
        shown = 12
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.02, 0.97, f"{len(rows)} agenc{'y' if len(rows) == 1 else 'ies'}", transform=ax.transAxes, color=COLORS["text"],
                fontsize=11, fontweight="bold", va="top")
        for i, label in enumerate(labels[:shown]):
            ax.text(0.02, 0.86 - i * 0.068, label, transform=ax.transAxes, color=COLORS["muted"], fontsize=7.5,
                    va="top")
        if len(rows) > shown:
            ax.text(0.02, 0.86 - shown * 0.068, f"... and {len(rows) - shown} more", transform=ax.transAxes,
                    color=COLORS["muted"], fontsize=7.5, va="top", style="italic")
        return
    values = [v for _, v in rows]
    steps = (defaults.get("thresholds") or _PERCENT_STEPS) if unit == "percentunit" else None
    colors = [_threshold_color(v, {"thresholds": steps}) if steps else SERIES[5] for v in values]
    slots = max(len(rows), 10)
    y = [slots - 1 - i for i in range(len(rows))]
    top = max(values) if unit != "percentunit" else 1.0
    ax.barh(y, values, color=colors, height=0.45, align="edge")
    ax.set_ylim(-0.2, slots)
    ax.set_xlim(0, top * 1.15 or 1)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(lambda v, _: format_value(v, unit, 0))
    for yi, label, v in zip(y, labels, values):
        ax.text(0.005 * top, yi + 0.5, label, va="bottom", fontsize=7, color=COLORS["text"])
        ax.text(v, yi + 0.22, f" {format_value(v, unit)}", va="center", fontsize=7, color=COLORS["text"])
    if hidden_rows:
        ax.text(0.99, 0.03, f"... and {hidden_rows + 1} more (Grafana scrolls)", transform=ax.transAxes, ha="right",
                color=COLORS["muted"], fontsize=7.5, style="italic")


# Table rows: red under the published 10 % line, blue otherwise (targets differ by block).
_PERCENT_STEPS = {"steps": [{"value": None, "color": "red"}, {"value": LOW_RATE, "color": "#5794f2"}]}


def _timeseries(ax: Axes, panel: dict[str, Any], results: list[list[dict[str, Any]]]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "short")
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    dashed = [re.compile(o["matcher"]["options"]) for o in panel["fieldConfig"]["overrides"]
              if o["matcher"]["id"] == "byRegexp"]
    lines = [(legend(t["legendFormat"], s["metric"]),
              [datetime.fromtimestamp(float(ts), timezone.utc) for ts, _ in s["values"]],
              [float(v) for _, v in s["values"]])
             for t, series in zip(panel["targets"], results) for s in series]
    if not lines:
        _blank(ax)
        return
    lines.sort(key=lambda line: line[0])
    base: dict[datetime, float] = {}
    for i, (name, times, values) in enumerate(lines):
        color = SERIES[i % len(SERIES)]
        if stacked:
            bottoms = [base.get(t, 0.0) for t in times]
            tops = [b + v for b, v in zip(bottoms, values)]
            ax.fill_between(times, bottoms, tops, color=color, alpha=0.35, linewidth=0)
            ax.plot(times, tops, color=color, linewidth=1.5, label=name)
            base.update(zip(times, tops))
            continue
        style = "--" if any(rx.fullmatch(name) for rx in dashed) else "-"
        ax.plot(times, values, style, color=color, linewidth=1.8, label=name)
    if unit == "percentunit":
        ax.set_ylim(0, 1.02)
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda v, _: format_value(v, unit, 0))
    locator = AutoDateLocator(tz=VN_TIME)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=VN_TIME))
    ax.grid(color=COLORS["grid"], linewidth=0.5)
    ax.legend(fontsize=7, loc="upper left", ncols=2, framealpha=0.6, facecolor=COLORS["panel"],
              edgecolor=COLORS["grid"], labelcolor=COLORS["text"])


DRAW = {"gauge": _gauge, "stat": _stat, "table": _table, "timeseries": _timeseries}


def render_national_png(prometheus_url: str, out: Path, window: str = "month",
                        lookback: timedelta = timedelta(minutes=30), now: datetime | None = None) -> Path:
    """Queries Prometheus with the national dashboard's panels and writes one PNG."""
    prometheus = Prometheus(prometheus_url)
    now = now or datetime.now(timezone.utc)
    start = now - lookback
    step_s = max(1.0, lookback.total_seconds() / 240)
    dashboard = national_dashboard()
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = Figure(figsize=(GRID_WIDTH * 0.9, height * 0.42 + 1.0), dpi=80, facecolor=COLORS["background"])
    grid = GridSpec(height, GRID_WIDTH, figure=figure, left=0.03, right=0.99, top=1 - 0.9 / (height * 0.42 + 1),
                    bottom=0.02, hspace=1.6, wspace=2.2)
    local = now.astimezone(VN_TIME)
    figure.suptitle(f"{dashboard['title']}: window={window}, {local:%Y-%m-%d %H:%M} (Asia/Ho_Chi_Minh)",
                    color=COLORS["text"], fontsize=16, fontweight="bold", x=0.01, ha="left")
    variables = {"window": window}
    for panel in panels:
        pos = panel["gridPos"]
        ax = figure.add_subplot(grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        title = substitute(panel["title"], variables)
        if panel["type"] == "row":
            ax.axis("off")
            ax.text(0, 0.2, title, color=COLORS["text"], fontsize=13, fontweight="bold", transform=ax.transAxes)
            continue
        exprs = [substitute(t["expr"], variables) for t in panel["targets"]]
        if panel["type"] == "timeseries":
            results = [prometheus.range(e, start, now, step_s) for e in exprs]
        else:
            results = [prometheus.instant(e, now) for e in exprs]
        _style(ax, title)
        DRAW[panel["type"]](ax, panel, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, facecolor=figure.get_facecolor())
    return out


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 6h or 2d, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.monitoring.dashboards_png", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    parser.add_argument("--out", type=Path, default=Path("docs/images/monitoring-national.png"))
    parser.add_argument("--window", choices=WINDOWS, default="month")
    parser.add_argument("--lookback", type=_duration, default=timedelta(minutes=30),
                        help="time range of the time-series panels (e.g. 30m, 6h)")
    args = parser.parse_args(argv)
    try:
        path = render_national_png(args.prometheus, args.out, args.window, args.lookback)
    except PrometheusError as exc:
        print(f"dashboards_png: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
