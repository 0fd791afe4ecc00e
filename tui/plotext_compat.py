"""Every use of a private name of plotext's and textual-plotext's by the console, in one place.

Written against plotext 5.3 and textual-plotext 1.0 (pinned in pyproject.toml);
tests/tui/test_textual_compat.py fails when the behaviour relied on here
changes. A chart is read from plotext's character matrix instead of being
written out as ANSI and parsed back by Rich, which took about half of its build.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual_plotext import Plot, PlotextPlot


def plotext_theme(widget: PlotextPlot) -> str:
    """The plotext theme PlotextPlot.render draws with for the app's theme (`textual-auto-<name>` for "auto")."""
    return widget._get_plotext_theme_name(widget.app.theme)


def set_plot_size(plot: Plot, width: int, height: int) -> None:
    """Size the figure as PlotextPlot.render does: `plotsize` alone leaves a resized plot drawn at its old size
    (textual-plotext issue 5), so the figure's own size is set as well."""
    plot.plotsize(width, height)
    plot._set_size(width, height)


def build_matrix(plot: Plot) -> Any | None:
    """Lay out the figure and fill its character matrix, as `plot.build()` does before writing it out as ANSI.

    None where this plotext builds no matrix that way (a fast plot, or internals other than these). The matrix
    has `rows`, and per row (row 0 the bottom line) lists of `marker` (one character a cell), `fullground`,
    `style` and `background` (plotext colours).
    """
    try:
        plot._set_sizes()
        plot._build_matrix()
        if plot.monitor.fast_plot:
            return None
        return plot.monitor.matrix
    except AttributeError:
        return None


def plot_text(plot: Plot, styles: dict | None = None) -> Text:
    """The figure as Rich text, the same as `Text.from_ansi(plot.build())` but read from its matrix; built that
    way where this plotext's internals are not the ones relied on here."""
    matrix = build_matrix(plot)
    if matrix is not None:
        try:
            return matrix_text(matrix, styles)
        except AttributeError:
            pass
    return Text.from_ansi(plot.build())


def cell_style(colors: tuple, cache: dict) -> Style:
    """The Rich style of a matrix cell's (foreground, style, background): plotext's own ANSI for them, decoded once."""
    colors = tuple(tuple(c) if isinstance(c, list) else c for c in colors)  # an RGB colour may be a list
    style = cache.get(colors)
    if style is None:
        from plotext._utility import colors_to_ansi

        decoded = Text.from_ansi(colors_to_ansi(*colors) + "x")
        style = cache[colors] = Style.combine([Style.null(), *(span.style for span in decoded.spans)])
    return style


def matrix_text(matrix: Any, styles: dict | None = None) -> Text:
    """A built figure's character matrix as Rich text, the same as `Text.from_ansi(plot.build())`.

    `styles` caches the Rich style of each (foreground, style, background); plotext's colours are few.
    """
    styles = {} if styles is None else styles
    text = Text(end="")
    for row in range(matrix.rows - 1, -1, -1):  # plotext's row 0 is the bottom line
        markers, fg, st, bg = matrix.marker[row], matrix.fullground[row], matrix.style[row], matrix.background[row]
        col, cols = 0, len(markers)
        while col < cols:
            key = (fg[col], st[col], bg[col])
            end = col + 1
            while end < cols and fg[end] == key[0] and st[end] == key[1] and bg[end] == key[2]:
                end += 1
            text.append("".join(markers[col:end]), cell_style(key, styles))
            col = end
        text.append("\n")  # from_ansi keeps the newline plotext ends every line with
    return text
