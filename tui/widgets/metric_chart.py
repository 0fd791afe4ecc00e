"""A line chart of one metric family (loss or accuracy), redrawn once per epoch."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.io.text import printable
from tui import plotext_compat

# Braille draws 2 points per column: 150 fills a 75-column plot. A plotext build's cost grows with
# its points, and both charts are built again on every drawn epoch.
MAX_POINTS = 150
# textual-plotext's first two data colours, fixed so the key above the plot can name them
SERIES_COLORS = {"train": (0, 130, 200), "val": (60, 180, 75)}
OTHER_COLORS = [(245, 130, 48), (145, 30, 180), (70, 240, 240)]  # for series with other names
ONSET_COLOR = (230, 25, 75)


def decimate(xs: list, ys: list, limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most `limit` evenly spaced points, always keeping the newest one."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    step = (n - 1) / (limit - 1)
    keep = sorted({round(i * step) for i in range(limit)} | {n - 1})
    return [xs[i] for i in keep], [ys[i] for i in keep]


def epoch_ticks(low: int, high: int, count: int = 6) -> list[int]:
    """Whole epochs for the x axis."""
    step = max(1, -(-(high - low) // (count - 1)))
    ticks = list(range(low, high + 1, step))
    if ticks[-1] != high:
        ticks[-1 if high - ticks[-1] < step / 2 and len(ticks) > 1 else len(ticks) :] = [high]
    return ticks


def _rich(rgb: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*rgb)


class CachedPlot(PlotextPlot):
    """A PlotextPlot that builds its text only when its data, size or theme changed.

    Textual renders the charts again on every return to their screen; call
    `changed()` after new data. The plot's text is read from plotext's matrix,
    not parsed back from its ANSI.
    """

    _styles: dict = {}  # (foreground, style, background) -> Style, shared: plotext's colours are few

    def __init__(self) -> None:
        super().__init__()
        self._version = 0
        self._cache: tuple[tuple, Text] | None = None
        self._held = False

    def changed(self) -> None:
        self._version += 1
        self.refresh()

    def hold(self) -> None:
        """Until `release`, show the text last built (at this size and theme) even if the data changed since."""
        self._held = True

    def release(self) -> None:
        self._held = False
        if self._cache is not None and self._cache[0][0] != self._version:
            self.refresh()

    def render(self) -> Text:
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or (self._cache[0] != key and not (self._held and self._cache[0][1:] == key[1:])):
            self._cache = (key, self._build())
        return self._cache[1].copy()

    def _build(self) -> Text:
        """PlotextPlot.render's text, without the round trip through ANSI."""
        plot = self.plt
        plotext_compat.set_plot_size(plot, self.size.width, self.size.height)
        plot.theme(plotext_compat.plotext_theme(self))
        return plotext_compat.plot_text(plot, self._styles)


class MetricChart(Widget):
    """Train and val curves of one metric, with the overfitting onset as a vertical line (chapter 8.1).

    The title line above the plot is also its key (series names in their colours, the onset
    epoch): plotext draws a legend and text inside the plot area, on top of the first points.
    """

    def __init__(self, title: str, ylabel: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.ylabel = ylabel
        self.epochs: list[int] = []
        self.series: dict[str, list[float]] = {}
        self.onset: int | None = None
        self._title: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.title_line(), classes="chart-title", markup=False)
        yield CachedPlot()

    def on_mount(self) -> None:
        self.redraw()

    def show(self, epochs: list[int], series: dict[str, list[float]], onset: int | None = None) -> None:
        """Replace the whole history and redraw (call once per epoch, not per batch)."""
        self.epochs, self.series, self.onset = list(epochs), {k: list(v) for k, v in series.items()}, onset
        self.redraw()

    def clear(self) -> None:
        self.show([], {}, None)

    def hold(self) -> None:
        """Keep showing the plot as it was last drawn (a screen's return paints first, draws after)."""
        self.query_one(CachedPlot).hold()

    def release(self) -> None:
        self.query_one(CachedPlot).release()

    def colors(self) -> dict[str, tuple[int, int, int]]:
        return {
            name: SERIES_COLORS.get(name, OTHER_COLORS[i % len(OTHER_COLORS)]) for i, name in enumerate(self.series)
        }

    def title_line(self) -> Text:
        """`loss  ━ train  ━ val  ┃ onset 7`, each key in its line's colour (fits 40 columns)."""
        line = Text.assemble((printable(self.title), "bold"))  # a tag or a run's name from a log: data
        for name, rgb in self.colors().items():
            line.append("  ━ ", style=_rich(rgb)).append(printable(name))
        if self.onset is not None and self.epochs:
            line.append("  ┃ ", style=_rich(ONSET_COLOR)).append(f"onset {self.onset}")
        return line

    def redraw(self) -> None:
        title = self.title_line()
        if title != self._title:  # one line high (app.tcss): no layout pass needed
            self._title = title
            self.query_one(".chart-title", Static).update(title, layout=False)
        plot = self.query_one(CachedPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        colors = self.colors()
        for name, ys in self.series.items():
            points = [(x, y) for x, y in zip(self.epochs, ys) if y == y and abs(y) != float("inf")]
            if not points:
                continue
            xs, vs = decimate([p[0] for p in points], [p[1] for p in points])
            plt.plot(xs, vs, marker="braille", color=colors[name])  # no label: a plotext legend covers the first points
        if self.onset is not None and self.epochs:
            plt.vertical_line(self.onset, color=ONSET_COLOR)
        if self.epochs:
            low, high = min(self.epochs), max(max(self.epochs), min(self.epochs) + 1)
            plt.xlim(low, high)
            plt.xticks(epoch_ticks(low, high))
        plot.changed()
