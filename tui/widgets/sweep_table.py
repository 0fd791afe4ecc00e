"""A sweep's trials as a table: number, state, value, best value, epochs, pruned at and why, parameters.

The rows come from engine.sweep.view's SweepView (its TrialRow fields); parameter names and values come from the
study's database, so every cell is data (`data_text`), never markup. The best trial so far is marked and bold.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from tui.data_text import data_text

# the parameters last: the widest column, cut (scrolled) at 80 columns rather than the numbers
COLUMNS = ("trial", "state", "value", "best", "epochs", "pruned", "parameters")
BEST_STYLE = "bold green"  # with the `*` before its number: the mark stays under NO_COLOR
STATE_STYLES = {"running": "cyan", "pruned": "yellow", "failed": "red", "stopped": "magenta"}


def value_text(value: Any) -> str:
    """A monitored value as the other screens show one (4 decimals); "-" when there is none."""
    return "-" if value is None else format(value, ".4f")


def param_value(value: Any) -> str:
    """A parameter as a short string: floats to 3 significant digits, lists (layer widths) as written."""
    if isinstance(value, float):
        return format(value, ".3g")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(param_value(v) for v in value) + "]"
    return str(value)


def params_line(params: dict[str, Any]) -> str:
    """`lr=0.00316 hidden=[256,128]`: each setting by the last part of its dotted name."""
    return " ".join(f"{name.rpartition('.')[2]}={param_value(value)}" for name, value in params.items())


def pruned_line(trial: Any) -> str:
    """`3 pruner`, `2 diagnosis:nan`, `user`: the epoch it was pruned at and why; "" for a trial not pruned."""
    parts = [str(p) for p in (trial.pruned_at, trial.prune_reason) if p is not None and p != ""]
    return " ".join(parts)


def trial_cells(trial: Any, best: bool) -> tuple[Text, ...]:
    style = BEST_STYLE if best else ""
    number = data_text(f"*{trial.number}" if best else f" {trial.number}", style)
    retry_of = getattr(trial, "retry_of", None)  # a stopped (or orphaned) trial this one continues: ↻ its number
    shown = trial.state if retry_of is None else f"{trial.state} ↻{retry_of}"
    state = data_text(shown, style or STATE_STYLES.get(trial.state, ""))
    return (
        number,
        state,
        data_text(value_text(trial.value), style),
        data_text(value_text(trial.best_value), style),
        data_text("-" if trial.epochs is None else trial.epochs, style),
        data_text(pruned_line(trial), style),
        data_text(params_line(trial.params), style),
    )


class SweepTable(DataTable):
    """One row per trial (keyed by its number); a refresh keeps the cursor on the trial it was on."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: tuple = ()

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, trials: tuple, best_number: int | None) -> None:
        """Replace the rows (nothing is redrawn when the trials are as shown)."""
        shown = (tuple(trials), best_number)
        if shown == self._shown:
            return
        self._shown = shown
        kept = self.selected_number()
        self.clear()
        for trial in trials:
            self.add_row(*trial_cells(trial, trial.number == best_number), key=str(trial.number))
        numbers = [t.number for t in trials]
        if kept in numbers:
            self.move_cursor(row=numbers.index(kept))

    def selected_number(self) -> int | None:
        """The number of the trial under the cursor; None in an empty table."""
        if not 0 <= self.cursor_row < self.row_count:
            return None
        return int(self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value)
