"""The sweep screen's status line: which sweep, its process' state, its trials by state, the best so far, and
the error of the last read under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.data_text import data_line, data_text, path_text
from tui.widgets.sweep_table import value_text


class SweepStatus(Static):
    DEFAULT_CSS = "SweepStatus { height: auto; max-height: 3; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Looking for a sweep ...", id=id, markup=False)

    def show(self, sweep_dir: Path | None, view: Any, error: str, runs_dir: str, process: str = "") -> None:
        self.update(status_line(sweep_dir, view, error, runs_dir, process))


def status_line(sweep_dir: Path | None, view: Any, error: str, runs_dir: str, process: str = "") -> Text:
    """`Sweep runs/digits (running): digits, val_loss ↓, 6 trials (2 running, 3 complete, 1 pruned); best trial 3:
    0.1234`, and the error of the last read under it."""
    if sweep_dir is None:
        return data_line("No sweep in ", path_text(runs_dir), " yet: start one with `trainconsole sweep`",
                         " (o shows a sweep folder).")  # fmt: skip
    parts: list[Any] = ["Sweep ", path_text(sweep_dir), f" ({process})" if process and process != "unknown" else ""]
    if view is not None:
        states: dict[str, int] = {}
        for trial in view.trials:
            states[trial.state] = states.get(trial.state, 0) + 1
        counts = ", ".join(f"{n} {state}" for state, n in states.items())
        arrow = "↑" if view.direction == "maximize" else "↓"
        parts += [": ", data_text(view.study), ", ", data_text(view.monitor), f" {arrow}, {len(view.trials)} trials"]
        parts += [f" ({counts})" if counts else ""]
        best = next((t for t in view.trials if t.number == view.best_number), None)
        if best is not None:
            parts += ["; best ", (f"trial {best.number}: {value_text(best.value)}", "bold green")]
    if error:
        parts += ["\n", data_text(error, "bold red")]
    return data_line(*parts)
