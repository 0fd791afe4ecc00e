"""Curves told apart without colour: each series has a marker its key shows; coinciding series are named."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from pilot_helpers import run
from tui.widgets.metric_chart import CachedPlot, MetricChart

BRAILLE = {chr(c) for c in range(0x2801, 0x2900)}
QUADRANTS = set("▘▝▖▗▚▞▌▐▄▀▙▛▜▟█")


class ChartApp(App):
    def __init__(self, **chart_options) -> None:
        super().__init__()
        self.chart_options = chart_options

    def compose(self) -> ComposeResult:
        yield MetricChart("loss", "loss", id="chart", **self.chart_options)


def _record_plot_calls(monkeypatch) -> list[tuple[str, str]]:
    """(plotext call, marker) of each series drawn."""
    from textual_plotext.plot import Plot

    calls: list[tuple[str, str]] = []
    for name in ("plot", "scatter"):
        original = getattr(Plot, name)

        def recorded(self, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, kwargs.get("marker")))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Plot, name, recorded)
    return calls


def test_without_colour_train_and_val_have_different_markers_named_in_the_key(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    calls = _record_plot_calls(monkeypatch)

    async def scenario():
        app = ChartApp()
        async with app.run_test(size=(60, 16)) as pilot:
            assert app.no_color  # Textual's monochrome filter: the series' colours become greys
            chart = app.query_one(MetricChart)
            calls.clear()
            epochs = list(range(1, 21))
            chart.show(epochs, {"train": [1 / e for e in epochs], "val": [1 / e + e / 40 for e in epochs]})
            await pilot.pause()
            assert calls == [("plot", "braille"), ("plot", "hd")]
            title = str(chart.query_one(".chart-title", Static).render())
            assert title == "loss  ━ train  ▀▄ val"  # each name with its own stroke
            drawn = set(chart.query_one(CachedPlot).render().plain)
            assert drawn & BRAILLE and drawn & QUADRANTS, "both strokes are on the plot"
            assert not chart.query_one(".chart-note", Static).display  # nothing overlaps: no note line

    run(scenario())


def test_series_that_coincide_are_both_visible_and_named_in_a_note_under_the_plot(monkeypatch):
    calls = _record_plot_calls(monkeypatch)

    async def scenario():
        app = ChartApp(overlap_noun="runs")
        async with app.run_test(size=(60, 16)) as pilot:
            chart = app.query_one(MetricChart)
            calls.clear()
            epochs = list(range(1, 31))
            same = [1 / e for e in epochs]
            chart.show(epochs, {"seed0-a": same, "seed0-b": list(same)})
            await pilot.pause()
            assert calls == [("plot", "braille"), ("scatter", "x")]  # b's points over a's line, a few apart
            note = chart.query_one(".chart-note", Static)
            assert note.display and str(note.render()) == "runs seed0-a and seed0-b overlap"
            assert note.region.y > chart.query_one(CachedPlot).region.y  # under the plot, inside the chart
            assert "x seed0-b" in str(chart.query_one(".chart-title", Static).render())
            drawn = chart.query_one(CachedPlot).render().plain
            assert "x" in drawn and set(drawn) & BRAILLE, "both runs show"

            chart.show(epochs, {"seed0-a": same, "lr-big": [y / 2 for y in same]})
            await pilot.pause()
            assert not note.display

    run(scenario())
