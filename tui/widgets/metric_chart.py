"""A line chart of one metric family (loss or accuracy), redrawn once per epoch."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

MAX_POINTS = 300


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
        ticks[-1 if high - ticks[-1] < step / 2 and len(ticks) > 1 else len(ticks):] = [high]
    return ticks


class MetricChart(Widget):
    """Train and val curves of one metric, with the overfitting onset as a vertical line (chapter 8.1)."""

    def __init__(self, title: str, ylabel: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.ylabel = ylabel
        self.epochs: list[int] = []
        self.series: dict[str, list[float]] = {}
        self.onset: int | None = None

    def compose(self) -> ComposeResult:
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.redraw()

    def show(self, epochs: list[int], series: dict[str, list[float]], onset: int | None = None) -> None:
        """Replace the whole history and redraw (call once per epoch, not per batch)."""
        self.epochs, self.series, self.onset = list(epochs), {k: list(v) for k, v in series.items()}, onset
        self.redraw()

    def clear(self) -> None:
        self.show([], {}, None)

    def redraw(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{self.title} per epoch")
        for name, ys in self.series.items():
            points = [(x, y) for x, y in zip(self.epochs, ys) if y == y and abs(y) != float("inf")]
            if not points:
                continue
            xs, vs = decimate([p[0] for p in points], [p[1] for p in points])
            plt.plot(xs, vs, label=name, marker="braille")
        if self.onset is not None and self.epochs:
            plt.vertical_line(self.onset, color="red")
            late = self.epochs and self.onset > (min(self.epochs) + max(self.epochs)) / 2
            plt.text(f"onset {self.onset}", x=self.onset, y=self._top(), color="red", alignment="right" if late else "left")
        if self.epochs:
            low, high = min(self.epochs), max(max(self.epochs), min(self.epochs) + 1)
            plt.xlim(low, high)
            plt.xticks(epoch_ticks(low, high))
        plot.refresh()

    def _top(self) -> float:
        values = [v for ys in self.series.values() for v in ys if v == v and abs(v) != float("inf")]
        return max(values) if values else 1.0
