"""The review page's small charts: pipeline metrics per day, drawn as inline SVG.

The figures come from SQL (``BacklogView.metric_daily``: one grouped scan, and
one index walk per daily percentile); this module only turns them into chart
geometry (numbers), which the template draws. No text from the pipeline goes
into the SVG except through the template's escaping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from reviewer.metrics import percentile
from store import BacklogView, MetricFilter

DAYS = 14
MAX_SERIES = 4
WIDTH, HEIGHT = 320, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")


@dataclass
class Line:
    name: str
    colour: str
    dashed: bool
    segments: list[str] = field(default_factory=list)  # SVG polyline points
    dots: list[tuple[float, float]] = field(default_factory=list)  # a mark on each day with data
    last: str = ""


@dataclass
class Chart:
    title: str
    unit: str
    y_max: str
    first_day: str
    last_day: str
    lines: list[Line]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom_y: int = HEIGHT - BOTTOM
    right_x: int = WIDTH - RIGHT


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f}%"
    if unit == "$":
        return f"${value:,.2f}"
    return f"{value:,.0f}s" if value >= 10 else f"{value:.1f}s"


def _chart(
    title: str, unit: str, days: list[str], series: list[tuple[str, bool, list[float | None]]]
) -> Chart:
    values = [v for _, _, vs in series for v in vs if v is not None]
    top_value = 1.0 if unit == "%" else max(values, default=0.0) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(days) - 1)
    names = dict.fromkeys(n for n, _, _ in series)
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    lines = []
    for name, dashed, vs in series:
        # Days without runs are skipped, not drawn as zero: the line joins the days that have data.
        points = [
            (round(LEFT + i * step, 1), round(TOP + plot_h * (1 - v / top_value), 1))
            for i, v in enumerate(vs)
            if v is not None
        ]
        line = Line(name, colours[name], dashed)
        if len(points) > 1:
            line.segments.append(" ".join(f"{x},{y}" for x, y in points))
        line.dots = [] if dashed else points
        known = [v for v in vs if v is not None]
        line.last = _fmt(known[-1], unit) if known else ""
        lines.append(line)
    return Chart(title, unit, _fmt(top_value, unit), days[0][5:], days[-1][5:], lines)


def metric_charts(view: BacklogView, column: str) -> list[Chart]:
    """Duration p50/p95, success rate and cost per day over the last ``DAYS`` days of
    metrics, one line per value of ``column`` (the ``MAX_SERIES`` busiest)."""
    last = view.metric_last_at()
    if last is None:
        return []
    end = date.fromisoformat(last[:10])
    days = [(end - timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
    since = f"{days[0]}T00:00:00Z"
    rows = view.metric_daily(column, MetricFilter(since=since))
    totals: dict[str, int] = {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        totals[r["grp"]] = totals.get(r["grp"], 0) + int(r["runs"])
        cells[(r["grp"], r["day"])] = r
    groups = sorted(totals, key=lambda g: (-totals[g], g))[:MAX_SERIES]

    def per_day(group: str, figure: Any) -> list[float | None]:
        out: list[float | None] = []
        for day in days:
            cell = cells.get((group, day))
            out.append(figure(group, day, cell) if cell else None)
        return out

    def pct(p: float) -> Any:
        def figure(group: str, day: str, cell: dict[str, Any]) -> float | None:
            n = int(cell["timed"] or 0)
            if not n or group == "unknown":
                return None
            nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
            f = MetricFilter(since=f"{day}T00:00:00Z", until=f"{nxt}T00:00:00Z", **{column: group})
            return percentile(view, f, n, p)

        return figure

    durations: list[tuple[str, bool, list[float | None]]] = []
    for g in groups:
        durations.append((g, False, per_day(g, pct(0.5))))
        durations.append((g, True, per_day(g, pct(0.95))))
    success = [
        (g, False, per_day(g, lambda _g, _d, c: int(c["completed"] or 0) / int(c["runs"])))
        for g in groups
    ]
    cost = [(g, False, per_day(g, lambda _g, _d, c: float(c["cost_usd"] or 0.0))) for g in groups]
    return [
        _chart("Duration p50 (solid) and p95 (dashed)", "s", days, durations),
        _chart("Success rate", "%", days, success),
        _chart("Cost per day", "$", days, cost),
    ]
