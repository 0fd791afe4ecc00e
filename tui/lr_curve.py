"""lr-find's curve drawn by plotext: the smoothed loss against the learning rate (log scale), the suggestion marked.

One drawing for both places it shows: `trainconsole lr-find` in the terminal (`curve_text`) and the console's
result dialog (`draw_curve` on its own plot object).
"""

from __future__ import annotations

import math
from typing import Any

from engine.io.text import printable

CURVE_COLOR = (0, 130, 200)
SUGGESTION_COLOR = (230, 25, 75)


def rate(lr: float) -> str:
    """A learning rate as a run takes it: 3 significant digits."""
    return f"{lr:.3g}"


def draw_curve(plt: Any, result: Any, *, colors: bool = True) -> None:
    """Plot `result` (engine.training.lr_find.LrFindResult) on a plotext figure (plotext itself or a widget's)."""
    from engine.training.lr_find import loss_axis

    plt.clear_data()
    plt.clear_figure()
    points = [p for p in result.points if math.isfinite(p.smoothed)]
    if not points:
        return
    # plotext's log axis draws only decades; the x values are log10(lr), labelled as rates
    xs = [math.log10(p.lr) for p in points]
    plt.plot(xs, [p.smoothed for p in points], marker="braille", **({"color": CURVE_COLOR} if colors else {}))
    if result.index is not None:
        x = math.log10(result.points[result.index].lr)
        plt.vertical_line(x, **({"color": SUGGESTION_COLOR} if colors else {}))
    plt.ylim(*loss_axis(points))
    low, high = math.floor(min(xs)), math.ceil(max(xs))
    ticks = list(range(low, high + 1, max(1, (high - low + 5) // 6)))
    plt.xticks(ticks, [f"1e{t}" for t in ticks])
    plt.xlabel("learning rate")
    plt.ylabel("smoothed loss")


def curve_text(result: Any, width: int = 100, height: int = 20) -> str:
    """The curve as plain text (no colours, no control characters): what `trainconsole lr-find` prints."""
    import plotext as plt

    draw_curve(plt, result, colors=False)
    plt.plotsize(width, height)
    plt.theme("clear")
    text = plt.build()
    plt.clear_figure()
    return printable(plt.uncolorize(text), keep="\n")
