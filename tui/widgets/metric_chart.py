"""A line chart of one metric family (loss or accuracy), redrawn once per epoch."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.io.text import printable
from engine.outputs.compare import coinciding, overlap_note
from tui import plotext_compat

# Braille draws 2 points per column: 150 fills a 75-column plot. A plotext build's cost grows with
# its points, and both charts are built again on every drawn epoch.
MAX_POINTS = 150
# textual-plotext's first two data colours, fixed so the key above the plot can name them
SERIES_COLORS = {"train": (0, 130, 200), "val": (60, 180, 75)}
OTHER_COLORS = [(245, 130, 48), (145, 30, 180), (70, 240, 240)]  # for series with other names
ONSET_COLOR = (230, 25, 75)
# Each series has a marker of its own and its key shows it: under NO_COLOR (Textual's monochrome filter) the
# colours above are near greys, so train (thin braille) and val (block quadrants) differ by their strokes.
SERIES_MARKERS = (("braille", "━"), ("hd", "▀▄"), ("dot", "•"), ("+", "+"))
# a series that coincides with one drawn before it: a sparse scatter on top, so the line under it shows
OVERLAP_MARKER, OVERLAP_EVERY = "x", 4


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

    The title line above the plot is also its key (series names in their colours and markers, the onset
    epoch): plotext draws a legend and text inside the plot area, on top of the first points. Series that
    coincide (two runs of the same seed) are named in a note under the plot.
    """

    DEFAULT_CSS = """
    MetricChart .chart-note { height: 1; width: 100%; text-wrap: nowrap; text-overflow: ellipsis; display: none; }
    MetricChart .chart-note.-shown { display: block; }
    """

    def __init__(self, title: str, ylabel: str, *, id: str | None = None, overlap_noun: str = "") -> None:
        """`overlap_noun`: what the series are, for the note ("runs": "runs a and b overlap")."""
        super().__init__(id=id)
        self.title = title
        self.ylabel = ylabel
        self.overlap_noun = overlap_noun
        self.epochs: list[int] = []
        self.series: dict[str, list[float]] = {}
        self.onset: int | None = None
        self.overlaps: list[tuple[str, str]] = []  # (earlier, later) series with the same values
        self._title: Text | None = None
        self._note = ""

    def compose(self) -> ComposeResult:
        yield Static(self.title_line(), classes="chart-title", markup=False)
        yield CachedPlot()
        yield Static("", classes="chart-note", markup=False)

    def on_mount(self) -> None:
        self.redraw()

    def show(self, epochs: list[int], series: dict[str, list[float]], onset: int | None = None,
             title: str | None = None) -> None:
        """Replace the whole history and redraw (call once per epoch, not per batch); `title`: a new one."""
        self.title = self.title if title is None else title
        self.epochs, self.series, self.onset = list(epochs), {k: list(v) for k, v in series.items()}, onset
        self.overlaps = coinciding(self.series) if len(self.series) > 1 else []
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

    def markers(self) -> dict[str, tuple[str, str]]:
        """Each series' plotext marker and the glyph its key shows; one that coincides with an earlier one: x."""
        later = {b for _, b in self.overlaps}
        markers, i = {}, 0
        for name in self.series:
            if name in later:
                markers[name] = (OVERLAP_MARKER, OVERLAP_MARKER)
            else:
                markers[name], i = SERIES_MARKERS[i % len(SERIES_MARKERS)], i + 1
        return markers

    def note(self) -> str:
        """The line under the plot: which series overlap ("" when none do)."""
        return overlap_note(self.overlaps, self.overlap_noun)

    def title_line(self) -> Text:
        """`loss  ━ train  ▀▄ val  ┃ onset 7`, each key in its line's colour and marker (fits 40 columns)."""
        line = Text.assemble((printable(self.title), "bold"))  # a tag or a run's name from a log: data
        markers = self.markers()
        for name, rgb in self.colors().items():
            line.append(f"  {markers[name][1]} ", style=_rich(rgb)).append(printable(name))
        if self.onset is not None and self.epochs:
            line.append("  ┃ ", style=_rich(ONSET_COLOR)).append(f"onset {self.onset}")
        return line

    def redraw(self) -> None:
        title = self.title_line()
        if title != self._title:  # one line high (app.tcss): no layout pass needed
            self._title = title
            self.query_one(".chart-title", Static).update(title, layout=False)
        self._show_note(self.note())
        plot = self.query_one(CachedPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        colors, markers = self.colors(), self.markers()
        for name, ys in self.series.items():
            points = [(x, y) for x, y in zip(self.epochs, ys) if y == y and abs(y) != float("inf")]
            if not points:
                continue
            xs, vs = decimate([p[0] for p in points], [p[1] for p in points])
            marker = markers[name][0]
            if marker == OVERLAP_MARKER:  # every few points only, ending on the newest: the line under it shows
                first = (len(xs) - 1) % OVERLAP_EVERY
                plt.scatter(xs[first::OVERLAP_EVERY], vs[first::OVERLAP_EVERY], marker=marker, color=colors[name])
            else:  # no label: a plotext legend covers the first points
                plt.plot(xs, vs, marker=marker, color=colors[name])
        if self.onset is not None and self.epochs:
            plt.vertical_line(self.onset, color=ONSET_COLOR)
        if self.epochs:
            low, high = min(self.epochs), max(max(self.epochs), min(self.epochs) + 1)
            plt.xlim(low, high)
            plt.xticks(epoch_ticks(low, high))
        plot.changed()

    def _show_note(self, note: str) -> None:
        if note == self._note:  # the training screen's charts: never a note, never a layout pass
            return
        self._note = note
        widget = self.query_one(".chart-note", Static)
        widget.update(Text(printable(note)))  # run names from folders: data
        widget.set_class(bool(note), "-shown")
