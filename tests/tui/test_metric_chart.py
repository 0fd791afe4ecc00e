"""The chart's key sits in its title line, so nothing is drawn over the plotted points."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult
from textual.widgets import Static
from textual_plotext import PlotextPlot

from pilot_helpers import run
from tui import plotext_compat
from tui.widgets.metric_chart import CachedPlot, MetricChart


class ChartApp(App):
    def compose(self) -> ComposeResult:
        yield MetricChart("loss", "loss", id="chart")


def _plot_text(chart: MetricChart) -> str:
    plt = chart.query_one(PlotextPlot).plt
    return re.sub(r"\x1b\[[0-9;]*m", "", plt.build())


def _overfitting(n: int) -> tuple[list[int], dict[str, list[float]]]:
    """n epochs of train and val curves that part (train 1/e, val 1/e + e/2n).

    The val loss turns up after a few epochs.
    """
    epochs = list(range(1, n + 1))
    return epochs, {"train": [1 / e for e in epochs], "val": [1 / e + e / (2 * n) for e in epochs]}


def test_series_names_and_the_onset_are_in_the_title_line_not_over_the_plot():
    async def scenario():
        app = ChartApp()
        async with app.run_test(size=(40, 14)) as pilot:
            chart = app.query_one(MetricChart)
            chart.show(*_overfitting(10), onset=2)
            await pilot.pause()
            title = str(chart.query_one(".chart-title", Static).render())
            assert title == "loss  ━ train  ▀▄ val  ┃ onset 2"  # val drawn and keyed in block quadrants
            assert len(title) <= 40  # fits half of an 80-column terminal
            plot = _plot_text(chart)
            for word in ("train", "val", "onset"):
                assert word not in plot, plot
            assert chart.query_one(PlotextPlot).region.y == chart.region.y + 1  # the plot starts under the title line

            chart.clear()
            await pilot.pause()
            assert str(chart.query_one(".chart-title", Static).render()) == "loss"

    run(scenario())


def test_the_plot_is_built_again_only_after_new_data_and_not_while_held(monkeypatch):
    builds = []
    original = CachedPlot._build
    monkeypatch.setattr(CachedPlot, "_build", lambda self: builds.append(1) or original(self))

    async def scenario():
        app = ChartApp()
        async with app.run_test(size=(40, 14)) as pilot:
            chart = app.query_one(MetricChart)
            chart.show([1, 2], {"train": [1.0, 0.5]})
            await pilot.pause()
            plot = chart.query_one(PlotextPlot)
            first = str(plot.render())
            built = len(builds)
            plot.refresh()  # what a return to the screen does
            await pilot.pause()
            assert len(builds) == built and str(plot.render()) == first
            chart.show([1, 2, 3], {"train": [1.0, 0.5, 0.2]})
            await pilot.pause()
            assert len(builds) == built + 1 and str(plot.render()) != first

            # held (a return to the training screen paints first): the last plot until released
            second = str(plot.render())
            chart.hold()
            chart.show([1, 2, 3, 4], {"train": [1.0, 0.5, 0.2, 0.1]})
            await pilot.pause()
            assert len(builds) == built + 1 and str(plot.render()) == second
            chart.release()
            await pilot.pause()
            assert len(builds) == built + 2 and str(plot.render()) != second
            chart.hold()
            await pilot.resize_terminal(50, 14)  # a new size cannot show the old text: built at once
            await pilot.pause()
            assert len(builds) == built + 3 and len(str(plot.render()).splitlines()[0]) == 50

    run(scenario())


def test_long_histories_are_decimated_evenly_and_keep_the_newest_point():
    from tui.widgets.metric_chart import MAX_POINTS, decimate

    xs = list(range(1, 1001))
    kept_x, kept_y = decimate(xs, [x * 2 for x in xs])
    assert len(kept_x) == MAX_POINTS and kept_x[0] == 1 and kept_x[-1] == 1000
    assert kept_y == [x * 2 for x in kept_x]
    gaps = {b - a for a, b in zip(kept_x, kept_x[1:])}
    assert max(gaps) - min(gaps) <= 1  # evenly spaced
    assert decimate([1, 2, 3], [4, 5, 6]) == ([1, 2, 3], [4, 5, 6])


def _segments(text):
    from rich.console import Console
    from rich.segment import Segment

    console = Console(width=200, color_system="truecolor", force_terminal=True)
    return list(Segment.simplify(text.render(console)))


def test_the_plot_text_read_from_plotext_s_matrix_is_what_its_ansi_output_parses_to():
    from rich.text import Text
    from textual_plotext.plot import Plot

    for theme in ("pro", "dark", "clear"):
        plot = Plot()
        plotext_compat.set_plot_size(plot, 60, 15)
        plot.theme(theme)
        xs = list(range(1, 31))
        plot.plot(xs, [1 / x for x in xs], marker="braille", color=(0, 130, 200))
        plot.plot(xs, [x / 30 for x in xs], marker="braille", color=[60, 180, 75])  # an RGB list, not only tuples
        plot.vertical_line(7, color=(230, 25, 75))
        plot.xticks([1, 10, 20, 30])
        expected = Text.from_ansi(plot.build())
        got = plotext_compat.matrix_text(plotext_compat.build_matrix(plot))
        assert got.plain == expected.plain
        assert _segments(got) == _segments(expected), theme


def test_the_chart_widget_shows_what_textual_plotext_would_render():
    async def scenario():
        app = ChartApp()
        async with app.run_test(size=(50, 16)) as pilot:
            chart = app.query_one(MetricChart)
            chart.show(*_overfitting(20), onset=5)
            await pilot.pause()
            plot = chart.query_one(CachedPlot)
            assert _segments(plot.render()) == _segments(PlotextPlot.render(plot))

    run(scenario())
