"""The overview's charts as geometry: axes from zero to a round top, values placed by slot,
gaps left open, lone points marked, bars titled; nothing to show is said, not drawn."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tripline_admin.activity.schemas import Series
from tripline_admin.console import charts
from tripline_admin.console.charts import bar_chart, format_value, line_chart, nice_ceiling

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
X0, Y0, X1, Y1 = charts.LEFT, charts.TOP, charts.WIDTH - charts.RIGHT, charts.HEIGHT - charts.BOTTOM


def series(values: list[float | None], step: int = 15) -> Series:
    return Series(start=START, step_seconds=step, values=values)


def path_points(d: str) -> list[tuple[str, float, float]]:
    """The commands of a path: (M or L, x, y)."""
    return [
        (kind, float(x), float(y)) for kind, x, y in re.findall(r"([ML])([\d.-]+) ([\d.-]+)", d)
    ]


@pytest.mark.parametrize(
    ("value", "top"),
    [
        (0, 1),
        (-3, 1),
        (0.3, 0.5),
        (1, 1),
        (1.2, 2),
        (3, 5),
        (7, 10),
        (18, 20),
        (24, 25),
        (240, 250),
    ],
)
def test_the_y_axis_ends_at_a_round_number_at_or_above_the_largest_value(
    value: float, top: float
) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


def test_figures_are_labelled_plainly_whole_or_with_two_decimals() -> None:
    assert [format_value(v) for v in (0, 3, 2.5, 0.125, 1234.4, 0.001)] == [
        "0",
        "3",
        "2.5",
        "0.12",
        "1,234",
        "<0.01",
    ]


def test_a_line_runs_from_the_first_slot_to_the_last_scaled_to_the_plot() -> None:
    chart = line_chart("Events", "events/s", [("accepted", "accepted", series([0, 5, 10, 2.5]))])

    [line] = chart.lines
    points = path_points(line.d)
    assert [kind for kind, _, _ in points] == ["M", "L", "L", "L"]
    # A slot's value is drawn at its end: the last at the plot's right edge.
    assert [x for _, x, _ in points] == pytest.approx(
        [X0 + (X1 - X0) * (i + 1) / 4 for i in range(4)], abs=0.01
    )
    # From the bottom (0) to the top (10, the round top of the axis).
    assert [y for _, _, y in points] == pytest.approx(
        [Y1, Y1 - (Y1 - Y0) / 2, Y0, Y1 - (Y1 - Y0) / 4], abs=0.01
    )
    assert [tick.label for tick in chart.y_ticks] == ["0", "2.5", "5", "7.5", "10"]
    assert chart.y_ticks[0].at == pytest.approx(Y1) and chart.y_ticks[-1].at == pytest.approx(Y0)
    assert line.latest == "2.5" and line.peak == "10"
    assert line.dots == (points[-1][1:],)  # The newest value is marked.
    assert not chart.empty


def test_two_lines_share_one_axis_scaled_to_the_larger() -> None:
    chart = line_chart(
        "Events",
        "events/s",
        [("accepted", "accepted", series([40, 40])), ("processed", "processed", series([20, 20]))],
    )
    accepted, processed = (path_points(line.d) for line in chart.lines)
    assert chart.y_ticks[-1].label == "50"
    assert accepted[0][2] == pytest.approx(Y1 - (Y1 - Y0) * 40 / 50, abs=0.01)
    assert processed[0][2] == pytest.approx(Y1 - (Y1 - Y0) * 20 / 50, abs=0.01)


def test_a_gap_in_the_samples_breaks_the_line_and_a_lone_sample_is_a_dot() -> None:
    chart = line_chart("Queue", "jobs", [("waiting", "queue", series([1, 2, None, 3, None, None]))])

    [line] = chart.lines
    assert [kind for kind, _, _ in path_points(line.d)] == ["M", "L", "M"]
    lone = path_points(line.d)[2][1:]
    assert line.dots == (lone,)
    assert line.latest == "3"


def test_a_single_sample_is_drawn_as_a_dot_where_its_slot_ends() -> None:
    chart = line_chart("Queue", "jobs", [("waiting", "queue", series([None, None, 5, None]))])

    [line] = chart.lines
    assert line.dots == ((pytest.approx(X0 + (X1 - X0) * 3 / 4, abs=0.01), pytest.approx(Y0)),)
    assert not chart.empty


def test_a_chart_with_no_samples_draws_no_line_and_says_it_is_empty() -> None:
    chart = line_chart("Queue", "jobs", [("waiting", "queue", series([None] * 60))])

    [line] = chart.lines
    assert line.d == "" and line.dots == () and line.latest == line.peak == "—"
    assert chart.empty
    assert [tick.label for tick in chart.y_ticks][-1] == "1"


def test_all_zero_figures_are_a_flat_line_on_the_axis_and_read_as_empty() -> None:
    chart = line_chart("Events", "events/s", [("accepted", "accepted", series([0.0] * 4))])

    assert [y for _, _, y in path_points(chart.lines[0].d)] == [pytest.approx(Y1)] * 4
    assert chart.empty


def test_time_labels_mark_the_window_from_its_start_to_its_end() -> None:
    chart = line_chart("Events", "events/s", [("a", "accepted", series([1.0] * 60))])

    assert [tick.label for tick in chart.x_ticks] == ["12:00", "12:05", "12:10", "12:15"]
    # The end labels are anchored inward, so that neither is cut off at the drawing's edge.
    assert [tick.anchor for tick in chart.x_ticks] == ["start", "middle", "middle", "end"]
    assert chart.x_ticks[0].at == pytest.approx(X0) and chart.x_ticks[-1].at == pytest.approx(X1)


def test_bars_rise_from_the_axis_in_proportion_and_say_their_hour_and_count() -> None:
    chart = bar_chart("Alerts per hour", "alerts", series([0, 5, 10, 2.5], step=3600))

    heights = [bar.height for bar in chart.bars]
    assert heights == pytest.approx([0, (Y1 - Y0) / 2, Y1 - Y0, (Y1 - Y0) / 4], abs=0.01)
    assert all(bar.y + bar.height == pytest.approx(Y1, abs=0.02) for bar in chart.bars)
    lefts = [bar.x for bar in chart.bars]
    assert lefts == sorted(lefts) and lefts[0] > X0 and lefts[-1] + chart.bars[-1].width < X1
    assert chart.bars[1].title == "2026-12-07 13:00 UTC: 5 alerts"
    assert not chart.empty


def test_a_day_without_alerts_is_an_empty_bar_chart() -> None:
    chart = bar_chart("Alerts per hour", "alerts", series([0.0] * 24, step=3600))

    assert len(chart.bars) == 24 and all(bar.height == 0 for bar in chart.bars)
    assert chart.empty
