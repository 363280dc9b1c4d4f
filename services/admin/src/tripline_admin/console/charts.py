"""The overview's charts as geometry for inline SVG: pure functions from a series of figures to
paths, bars and axis labels in the chart's own coordinates (the template draws them).

Server-rendered, so the console needs no chart library and its CSP allows no script of
anyone else's; the browser scales the SVG to its box (`viewBox`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tripline_admin.activity.schemas import Series

WIDTH = 420
HEIGHT = 200
LEFT = 44  # Room for the y-axis labels.
RIGHT = 8
TOP = 10
BOTTOM = 24  # Room for the x-axis labels.
Y_TICKS = 4


@dataclass(frozen=True)
class Tick:
    """A label on an axis, at `at` along it (x for the time axis, y for the values)."""

    at: float
    label: str
    anchor: str = "middle"
    """How the label is placed on `at` (SVG's text-anchor): the axis's ends keep it inside."""


@dataclass(frozen=True)
class Line:
    """One series drawn as a line: `d` is an SVG path (a gap in the data breaks it), `dots`
    the points drawn as markers (the newest, and any point with no neighbour to join)."""

    name: str
    css: str
    d: str
    dots: tuple[tuple[float, float], ...]
    latest: str
    peak: str


@dataclass(frozen=True)
class Bar:
    """One slot of a bar chart."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """What the template draws: lines or bars on a plot area, with axis ticks."""

    title: str
    unit: str
    width: int = WIDTH
    height: int = HEIGHT
    plot: tuple[float, float, float, float] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    empty: bool = True


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `value` (1 for
    nothing to show): the top of the y axis, so that its ticks read as round numbers."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power * (1 + 1e-9):
            return float(factor * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


def format_value(value: float) -> str:
    """A figure for a label: whole numbers plainly, small ones with up to two decimals."""
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value >= 0.01 else "<0.01"


def _scale(top: float) -> tuple[float, float, float, list[Tick]]:
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    ticks = [
        Tick(at=round(y1 - (y1 - y0) * i / Y_TICKS, 2), label=format_value(top * i / Y_TICKS))
        for i in range(Y_TICKS + 1)
    ]
    return x0, x1, y1 - y0, ticks


def _time_ticks(start: datetime, step: int, count: int, every: int, fmt: str) -> list[Tick]:
    # A label every `every` slots, at the slot's start, the last slot's end included.
    x0, x1 = LEFT, WIDTH - RIGHT
    ticks = []
    for i in range(0, count + 1, every):
        moment = (start + timedelta(seconds=step * i)).astimezone(UTC)
        anchor = "start" if i == 0 else "end" if i == count else "middle"
        at = round(x0 + (x1 - x0) * i / count, 2)
        ticks.append(Tick(at=at, label=moment.strftime(fmt), anchor=anchor))
    return ticks


def line_chart(
    title: str,
    unit: str,
    series: Sequence[tuple[str, str, Series]],
    *,
    tick_every: int = 20,
) -> Chart:
    """Lines over time sharing one y axis from 0: `series` is (name, CSS class, figures),
    all of the same slots. A slot's value is drawn at its end (the moment it was known)."""
    first = series[0][2]
    count = len(first.values)
    known = [v for _, _, s in series for v in s.values if v is not None]
    top = nice_ceiling(max(known, default=0.0))
    x0, x1, plot_height, y_ticks = _scale(top)
    bottom = HEIGHT - BOTTOM

    def point(i: int, value: float) -> tuple[float, float]:
        x = x0 + (x1 - x0) * (i + 1) / count if count else x0
        return round(x, 2), round(bottom - plot_height * value / top, 2)

    lines = []
    for name, css, figures in series:
        commands: list[str] = []
        dots: list[tuple[float, float]] = []
        previous: float | None = None
        for i, value in enumerate(figures.values):
            if value is None:
                previous = None
                continue
            x, y = point(i, value)
            alone = previous is None and (i + 1 >= count or figures.values[i + 1] is None)
            commands.append(f"{'M' if previous is None else 'L'}{x} {y}")
            if alone:
                dots.append((x, y))
            previous = value
        present = [(i, v) for i, v in enumerate(figures.values) if v is not None]
        if present and point(*present[-1]) not in dots:
            dots.append(point(*present[-1]))
        latest = format_value(present[-1][1]) if present else "—"
        peak = format_value(max(v for _, v in present)) if present else "—"
        commands_d = " ".join(commands)
        lines.append(
            Line(name=name, css=css, d=commands_d, dots=tuple(dots), latest=latest, peak=peak)
        )
    return Chart(
        title=title,
        unit=unit,
        lines=lines,
        y_ticks=y_ticks,
        x_ticks=_time_ticks(first.start, first.step_seconds, count, tick_every, "%H:%M"),
        empty=not any(known),
    )


def bar_chart(title: str, unit: str, figures: Series, *, tick_every: int = 6) -> Chart:
    """One bar per slot, from 0; each bar's title says its slot and value."""
    count = len(figures.values)
    values = [v or 0.0 for v in figures.values]
    top = nice_ceiling(max(values, default=0.0))
    x0, x1, plot_height, y_ticks = _scale(top)
    bottom = HEIGHT - BOTTOM
    slot_width = (x1 - x0) / count if count else 0.0
    bars = []
    for i, value in enumerate(values):
        height = plot_height * value / top
        moment = (figures.start + timedelta(seconds=figures.step_seconds * i)).astimezone(UTC)
        bars.append(
            Bar(
                x=round(x0 + slot_width * i + slot_width * 0.1, 2),
                y=round(bottom - height, 2),
                width=round(slot_width * 0.8, 2),
                height=round(height, 2),
                title=f"{moment:%Y-%m-%d %H:%M} UTC: {format_value(value)} {unit}",
            )
        )
    return Chart(
        title=title,
        unit=unit,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=_time_ticks(figures.start, figures.step_seconds, count, tick_every, "%H:%M"),
        empty=not any(values),
    )
