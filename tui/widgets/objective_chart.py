"""A sweep's objective by trial: each finished trial's value as a point, pruned ones apart, and the running best."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from engine.io.text import printable
from tui.widgets.metric_chart import MAX_POINTS, CachedPlot, decimate, epoch_ticks

COMPLETE_COLOR, PRUNED_COLOR, BEST_COLOR = (60, 180, 75), (245, 130, 48), (0, 130, 200)


@dataclass
class Objective:
    """What the chart draws: (trial number, value) of complete and of pruned trials, and the best so far."""

    complete: list[tuple[int, float]] = field(default_factory=list)
    pruned: list[tuple[int, float]] = field(default_factory=list)
    best: list[tuple[int, float]] = field(default_factory=list)
    last: int = 0  # the highest trial number, drawn or not (a running trial widens the axis)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def objective_points(view: Any) -> Objective:
    """From a SweepView: its objective (complete trials, each with the best so far) and, apart, the last value of
    each pruned or stopped trial (it never finished, so it is no candidate for the best)."""
    out = Objective(last=max((t.number for t in view.trials), default=0))
    for number, value, best in view.objective:
        out.complete.append((number, value))
        out.best.append((number, best))
    for trial in sorted(view.trials, key=lambda t: t.number):
        if trial.state in ("pruned", "stopped") and _finite(trial.value):
            out.pruned.append((trial.number, trial.value))
    return out


class ObjectiveChart(Widget):
    """The title line is the key (plotext's own legend would cover the first points)."""

    DEFAULT_CSS = """
    ObjectiveChart { width: 1fr; height: 100%; }
    ObjectiveChart .chart-title { height: 1; width: 100%; content-align: center middle; text-wrap: nowrap;
                                  text-overflow: ellipsis; }
    ObjectiveChart PlotextPlot { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.monitor = ""
        self.direction = "minimize"
        self.objective = Objective()

    def compose(self) -> ComposeResult:
        yield Static(self.title_line(), classes="chart-title", markup=False)
        yield CachedPlot()

    def on_mount(self) -> None:
        self.redraw()

    def show(self, view: Any) -> None:
        objective, monitor, direction = objective_points(view), view.monitor, view.direction
        if (objective, monitor, direction) == (self.objective, self.monitor, self.direction):
            return  # a poll that found nothing new: no rebuild
        self.objective, self.monitor, self.direction = objective, monitor, direction
        self.redraw()

    def title_line(self) -> Text:
        arrow = "↑" if self.direction == "maximize" else "↓"
        line = Text.assemble((printable(self.monitor or "objective"), "bold"), f" {arrow}")  # a name from the study
        for label, glyph, rgb in (("trial", "•", COMPLETE_COLOR), ("pruned", "x", PRUNED_COLOR),
                                  ("best", "━", BEST_COLOR)):  # fmt: skip
            line.append(f"  {glyph} ", style="rgb({},{},{})".format(*rgb)).append(label)
        return line

    def redraw(self) -> None:
        self.query_one(".chart-title", Static).update(self.title_line(), layout=False)
        plot = self.query_one(CachedPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        objective = self.objective
        if objective.best:  # first: the trials' points are drawn over it
            xs, ys = decimate([p[0] for p in objective.best], [p[1] for p in objective.best], MAX_POINTS)
            plt.plot(xs, ys, marker="braille", color=BEST_COLOR)
        for points, marker, rgb in ((objective.complete, "•", COMPLETE_COLOR), (objective.pruned, "x", PRUNED_COLOR)):
            if points:
                xs, ys = decimate([p[0] for p in points], [p[1] for p in points], MAX_POINTS)
                plt.scatter(xs, ys, marker=marker, color=rgb)
        numbers = [p[0] for p in objective.complete + objective.pruned]
        if numbers:
            low = min(numbers)
            high = max(objective.last, low + 1)
            plt.xlim(low, high)
            plt.xticks(epoch_ticks(low, high))
        plot.changed()
