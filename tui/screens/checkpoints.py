"""Screen 4: runs and their checkpoints; curves, settings, resume, evaluate, delete."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from engine.cli.printers import format_size
from engine.runs.records import read_metrics, settings_lines
from engine.io.text import shown_path
from tui.data_text import data_line, data_text, path_text
from tui.widgets.key_footer import KeyFooter
from tui.widgets.metric_chart import MetricChart
from tui.widgets.run_history import RunHistory
from tui.widgets.screen_tabs import ScreenTabs


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cursor_key(table: DataTable) -> Any:
    """The key of the row under the table's cursor (a checkpoint's path); None in an empty table."""
    if not 0 <= table.cursor_row < table.row_count:
        return None
    return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value


def settings_text(run_dir: Path) -> str:
    """The run's settings.toml without its comment lines."""
    return settings_lines(run_dir / "settings.toml")


class CheckpointsScreen(Screen):
    # two tables, each titled in a line above it (one row: 80x24 keeps its chart); the focused one, whose row e and
    # delete act on, has a heavy bright line
    DEFAULT_CSS = """
    CheckpointsScreen #runs, CheckpointsScreen #ckpts {
        border-top: round $panel-lighten-2; border-title-align: left; border-title-color: $text-muted;
    }
    CheckpointsScreen #runs:focus, CheckpointsScreen #ckpts:focus {
        border-top: heavy $accent; border-title-color: $text; border-title-style: bold;
    }
    """
    # Up/Down pick a run: without this Textual focuses the first focusable widget, the screen tabs
    AUTO_FOCUS = "#runs"
    # under 100 columns the two tables cannot stand side by side without cutting columns (app.tcss)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("a", "attach", "Attach", tooltip="follow the selected run, training in another process, and steer it"),
        Binding("r", "resume", "Resume", tooltip="resume the selected run from its last.pth"),
        # e and delete act on the focused table's row: each key has a binding per table, the other one hidden
        # ("ckpt": with "checkpoint" the footer would lose a key at 120 columns)
        Binding("e", "evaluate('run')", "Eval run", tooltip="evaluate the selected run's best.pth (Runs focused)"),
        Binding("e", "evaluate('checkpoint')", "Eval ckpt", tooltip="evaluate the selected checkpoint (table focused)"),
        Binding("delete,D", "delete('run')", "Delete run", tooltip="delete the selected run folder (asks first)"),
        Binding(
            "delete,D",
            "delete('checkpoint')",
            "Delete ckpt",
            tooltip="delete the selected checkpoint (its table focused; asks first)",
        ),
        # in the help, not the footer: ten keys, ? and q fill 120 columns
        Binding("f5", "refresh", "Refresh", tooltip="refresh the list", show=False),
        Binding("o", "open_logs", "Logs", tooltip="open a folder of TensorBoard or Lightning CSV logs, read-only"),
        Binding("m", "mark", "Mark", tooltip="mark or unmark the selected run for a comparison"),
        Binding("c", "compare", "Compare", tooltip="compare the marked runs: curves, best metrics, settings"),
        Binding("g", "save_curves", "PNG", tooltip="save the curves of the marked (or selected) runs as a PNG"),
        Binding("x", "export_script", "Export", tooltip="write the selected run as a plain PyTorch script: train.py"),
    ]
    _marked: frozenset[str] = frozenset()  # run folders marked for a comparison (m)

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Any] = []

    def compose(self) -> ComposeResult:
        yield ScreenTabs("checkpoints")
        with Horizontal(id="ck-top"):
            runs = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            runs.border_title = "Runs (loading ...)"  # then how many, and where (_show_runs): no line of its own
            yield runs
            checkpoints = DataTable(id="ckpts", cursor_type="row", zebra_stripes=True)
            checkpoints.border_title = "Checkpoints"  # of the selected run, once there is one (_show_run)
            yield checkpoints
        with Horizontal(id="ck-bottom"):
            yield MetricChart("loss", "loss", id="run-chart")
            with VerticalScroll(id="ck-details-box"):
                yield Static("", id="ck-details", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns("run", "status", "epochs", "best")
        self.query_one("#ckpts", DataTable).add_columns("file", "epoch", "val loss", "val acc", "size", "best")

    def on_screen_resume(self) -> None:
        if self.focused is None or isinstance(
            self.focused, ScreenTabs
        ):  # a click on a tab leaves the focus on the tabs
            self.query_one("#runs", DataTable).focus()
        self.action_refresh()

    # -- listing ----------------------------------------------------------------
    def action_refresh(self) -> None:
        self._list_runs(self.app.settings.run.runs_dir)

    @work(thread=True, exclusive=True, exit_on_error=False, group="list-runs")
    def _list_runs(self, runs_dir: str) -> list[Any]:
        from engine.runs.checkpoints import list_runs

        return list_runs(runs_dir)

    def _show_runs(self, runs: list[Any]) -> None:
        table = self.query_one("#runs", DataTable)
        selected, row = self.selected_run(), table.cursor_row
        self.runs = runs
        table.clear()
        for run in runs:
            table.add_row(
                self._run_label(run), data_text(run.status), str(run.epochs), _num(run.best_epoch, "d"), key=run.path
            )
        runs_dir = self.app.settings.run.runs_dir
        table.border_title = data_line("Runs: ", str(len(runs)) if runs else "none", " in ", path_text(runs_dir))
        if selected is not None and any(r.path == selected.path for r in runs):
            table.move_cursor(row=[r.path for r in runs].index(selected.path))
        elif runs and row is not None:  # the selected run was deleted: its neighbour, not the first run
            table.move_cursor(row=min(row, len(runs) - 1))
        if runs:
            self._show_run(self.selected_run())
        else:
            self.query_one("#ckpts", DataTable).border_title = "Checkpoints"
            self.query_one("#ckpts", DataTable).clear()
            self.query_one(MetricChart).clear()
            self._details(data_line("No runs in ", path_text(runs_dir), " yet: train one on screen 3 (s starts it)."))

    def selected_run(self) -> Any | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row is None or not 0 <= table.cursor_row < len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def selected_checkpoint(self) -> Any | None:
        run, table = self.selected_run(), self.query_one("#ckpts", DataTable)
        if run is None or not run.checkpoints or not 0 <= table.cursor_row < len(run.checkpoints):
            return None
        return run.checkpoints[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs" and self.runs:
            self._show_run(self.selected_run())

    def _show_run(self, run: Any | None) -> None:
        if run is None:
            return
        table = self.query_one("#ckpts", DataTable)
        table.border_title = data_line("Checkpoints of ", path_text(run.path))
        kept = _cursor_key(table)  # a refresh (after a dialog, f5) keeps the checkpoint e and delete act on
        table.clear()
        for c in run.checkpoints:
            table.add_row(
                data_text(Path(c.path).name),
                _num(c.epoch, "d"),
                _num(c.val_loss, ".4f"),
                _num(c.val_acc, ".1%"),
                format_size(c.size),
                "*" if c.is_best else "",
                key=c.path,
            )
        paths = [c.path for c in run.checkpoints]
        if kept in paths:
            table.move_cursor(row=paths.index(kept))
        history = RunHistory.from_rows(read_metrics(Path(run.path) / "metrics.jsonl").items)
        self.query_one(MetricChart).show(history.epochs, {"train": history.train_loss, "val": history.val_loss})
        head = data_line(data_text(run.name), ": ", data_text(run.status), " (", data_text(run.detail), ")")
        notes = "".join(f"{note}\n" for note in run.notes)  # what the reader skipped: said, the rest still shown
        body = data_text(f"{notes}\n{settings_text(Path(run.path))}", lines=True)
        self._details(data_line(head, "\n", path_text(run.path), "\n", body))

    # -- actions ----------------------------------------------------------------
    def marked_runs(self) -> list[Path]:
        """The marked runs still listed, in the list's order."""
        return [Path(r.path) for r in self.runs if str(r.path) in self._marked]

    def _run_label(self, run: Any) -> Text:
        """The run's name, after a mark when it is marked for a comparison."""
        return data_line("+ ", data_text(run.name)) if str(run.path) in self._marked else data_text(run.name)

    def action_mark(self) -> None:
        run = self.selected_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        self._marked = self._marked ^ {str(run.path)}
        table = self.query_one("#runs", DataTable)
        table.update_cell(run.path, table.ordered_columns[0].key, self._run_label(run), update_width=True)
        names = ", ".join(p.name for p in self.marked_runs()) or "none"
        self.notify(f"Marked for comparison: {names} (c compares, g saves their curves)")

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        runs = self.marked_runs()
        if len(runs) < 2:
            self.notify("Mark two or more runs with m first.", severity="warning")
            return
        self.app.push_screen(CompareScreen(runs))

    def action_save_curves(self) -> None:
        runs = self.marked_runs() or ([Path(self.selected_run().path)] if self.selected_run() else [])
        if not runs:
            self.notify("No run selected.", severity="warning")
            return
        self._save_curves(runs)

    @work(thread=True, exclusive=True, exit_on_error=False, group="save-curves")
    def _save_curves(self, runs: list[Path]) -> None:
        from engine.outputs.curves import save_curves
        from engine.outputs.readers import read_run
        from engine.settings.config import SettingsError

        out = runs[0] / ("curves.png" if len(runs) == 1 else "curves-compared.png")
        try:
            save_curves([read_run(p) for p in runs], out)
        except (SettingsError, OSError) as e:
            self.app.call_from_thread(self.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self.notify, f"Saved {out}")

    def action_export_script(self) -> None:
        run = self.selected_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        self._export_script(Path(run.path))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export-script")
    def _export_script(self, run_dir: Path) -> None:
        from engine.outputs.export_script import export_settings, script_text, write_script
        from engine.settings.config import SettingsError

        try:
            settings, source = export_settings(run_dir, None, self.app.trusted_imports())
            out = write_script(script_text(settings, source), run_dir / "train.py")
        except (SettingsError, OSError) as e:  # a refused setting, a symlink at train.py, a full disk
            self.app.call_from_thread(self.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self.notify, f"Exported {out}")

    def action_open_logs(self) -> None:
        from tui.screens.open_logs import OpenLogsScreen
        from tui.screens.scalars import ScalarsScreen

        def open_path(path: str | None) -> None:
            if path is None:
                return
            if "\0" in path or not Path(path).exists():
                self.notify(f"{path}: no such file or folder", severity="error")
                return
            self.app.push_screen(ScalarsScreen(path))

        self.app.push_screen(OpenLogsScreen(str(self.app.settings.run.runs_dir)), open_path)

    def action_attach(self) -> None:
        run = self.selected_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        if run.status not in ("running", "paused", "starting"):
            self.notify(f"{run.name} is not running ({run.status}): nothing to attach to.", severity="warning")
            return
        self.run_worker(self.app.attach_run(Path(run.path)))

    def action_resume(self) -> None:
        run = self.selected_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
            return
        if self.app.run_control is not None:
            self.notify("A run is active: stop it first.", severity="warning")
            return
        last = Path(run.path) / "checkpoints" / "last.pth"
        if not last.is_file():
            self.notify(f"{run.name} has no last.pth to resume from.", severity="error")
            return
        self._load_resume(last)

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def _load_resume(self, last: Path) -> tuple[Any, int, Path]:
        from engine.device import on_device
        from engine.runs.resume import resume_settings

        settings, epoch = resume_settings(last, self.app.trusted_imports())
        return on_device(settings, self.app.settings.device.device), epoch, last  # the device chosen on screen 1

    async def _start_resume(self, settings: Any, epoch: int, last: Path) -> None:
        wanted = self.app.settings.training.epochs
        if epoch >= settings.training.epochs:
            if wanted <= epoch:
                self.notify(
                    f"This run already trained {epoch} of its {settings.training.epochs} epochs. "
                    f"Set training.epochs above {epoch} on the configuration screen to train longer.",
                    severity="warning",
                    timeout=8,
                )
                return
            settings = settings.replace("training.epochs", wanted)
        await self.app.start_run(settings, last)

    def on_checkpoints(self) -> bool:
        """Whether the keys that act on a row (e, delete) act on the checkpoints table's: it has the focus."""
        return self.focused is self.query_one("#ckpts", DataTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("evaluate", "delete"):  # the binding of the focused table's row shows; the other is hidden
            return (parameters == ("checkpoint",)) == self.on_checkpoints()
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # the footer says Eval run or Eval checkpoint as the focus moves

    def _target(self, of: str) -> tuple[Any, Path] | None:
        """The selected run and what `of` ("run", "checkpoint") names in it; None, said why, when none is selected."""
        run = self.selected_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
            return None
        if of == "run":
            return run, Path(run.path)
        ck = self.selected_checkpoint()
        if ck is None:
            self.notify(f"{run.name} has no checkpoint to select.", severity="warning")
            return None
        return run, Path(ck.path)

    def action_evaluate(self, of: str = "run") -> None:
        target = self._target(of)
        if target is None:
            return
        self._details(data_line("Evaluating ", path_text(target[1]), " ..."))
        self._evaluate(str(target[1]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate")
    def _evaluate(self, target: str) -> dict[str, Any]:
        from engine.runs.evaluate import evaluate_checkpoint

        # the device chosen on screen 1
        return evaluate_checkpoint(
            target, device=self.app.settings.device.device, allowed_imports=self.app.trusted_imports()
        )

    def action_delete(self, of: str = "run") -> None:
        from tui.screens.confirm import ConfirmScreen

        found = self._target(of)
        if found is None:
            return
        run, target = found
        if run.status == "running":
            self.notify("This run is training: stop it first.", severity="error")
            return
        shown = shown_path(target)
        what = f"checkpoint {shown}" if of == "checkpoint" else f"run folder {shown} and all its checkpoints"

        def answer(yes: bool | None) -> None:
            if yes:
                self._delete(target)

        self.app.push_screen(ConfirmScreen(f"Delete {what}?", "Delete"), answer)

    def _delete(self, target: Path) -> None:
        try:
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        except OSError as e:
            self.notify(f"cannot delete {target}: {e}", severity="error")
            return
        self.notify(f"deleted {target}")
        self.action_refresh()

    # -- results ------------------------------------------------------------------
    async def on_worker_state_changed(self, event) -> None:
        worker = event.worker
        if not worker.is_finished or worker.group not in ("list-runs", "evaluate", "resume"):
            return
        if worker.error is not None:
            message = f"{worker.error}"
            if worker.group == "evaluate":
                self._details(f"Evaluation failed: {message}")
            else:
                self.notify(message, severity="error", timeout=8)
            return
        if worker.result is None:
            return
        if worker.group == "list-runs":
            self._show_runs(worker.result)
        elif worker.group == "evaluate":
            from engine.runs.evaluate import format_evaluation

            self._details(format_evaluation(worker.result))
        else:
            await self._start_resume(*worker.result)

    def _details(self, text: str | Text) -> None:
        """Lines with names, paths, settings and errors from the run's files: shown as written, lines kept."""
        self.query_one("#ck-details", Static).update(text if isinstance(text, Text) else data_text(text, lines=True))
