"""Marked runs compared: val loss and accuracy overlaid (a colour and key per run), best metrics, differing settings."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.outputs.compare import compare
from tui.data_text import data_text
from tui.widgets.key_footer import KeyFooter
from tui.widgets.metric_chart import MetricChart


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class CompareScreen(Screen):
    DEFAULT_CSS = """
    CompareScreen #cmp-charts { height: 1fr; min-height: 8; }
    CompareScreen #cmp-charts MetricChart { width: 1fr; }
    CompareScreen #cmp-tables { height: auto; max-height: 45%; }
    CompareScreen #cmp-tables DataTable { width: 1fr; height: auto; max-height: 100%; }
    CompareScreen #cmp-title { height: 1; }
    """
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", tooltip="back to the checkpoints screen")]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.runs, self.best, self.differing = compare(self.run_dirs)

    def compose(self) -> ComposeResult:
        names = ", ".join(r.name for r in self.runs)
        yield Static(data_text(f"Comparing {len(self.runs)} runs: {names}"), id="cmp-title")
        with Horizontal(id="cmp-charts"):
            yield MetricChart("val loss", "loss", id="cmp-loss", overlap_noun="runs")
            yield MetricChart("val acc", "accuracy", id="cmp-acc", overlap_noun="runs")
        with Vertical(id="cmp-tables"):
            yield DataTable(id="cmp-best", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="cmp-settings", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        epochs = sorted({s for r in self.runs for s, _ in r.tags.get("val_loss", [])})
        for chart_id, tag in (("#cmp-loss", "val_loss"), ("#cmp-acc", "val_acc")):
            series = {}
            for run in self.runs:  # one series per run, on the union of epochs (a shorter run ends early)
                values = dict(run.tags.get(tag, []))
                series[run.name] = [values.get(e, float("nan")) for e in epochs]
            self.query_one(chart_id, MetricChart).show(epochs, series)
        best = self.query_one("#cmp-best", DataTable)
        best.add_columns("run", "epochs", "best val loss", "at", "best val acc", "at")
        for b in self.best:
            best.add_row(data_text(b.name), str(b.epochs), _num(b.val_loss, ".4f"), _num(b.val_loss_epoch, "d"),
                         _num(b.val_acc, ".1%"), _num(b.val_acc_epoch, "d"))  # fmt: skip
        table = self.query_one("#cmp-settings", DataTable)
        table.add_columns("setting that differs", *(data_text(r.name) for r in self.runs))
        for key, values in self.differing.items():  # names, keys and values from the runs' files: data
            table.add_row(data_text(key), *(data_text("-" if v is None else v) for v in values))
        if not self.differing:
            table.add_row("(the same settings)", *("" for _ in self.runs))
