"""Screen 5: a sweep's trials as they run (engine.sweep.view.read_sweep, polled off the UI thread), the objective
by trial with the running best, the selected trial's curves; stop the sweep, stop or prune a trial, open one on the
training screen, compare the best trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Label
from textual.worker import Worker, WorkerState

from tui.screens.open_logs import OpenLogsScreen
from tui.sweep_files import STUDY_FILE, newest_sweep, read_study, send_control, start_sweep, study_stamp
from tui.widgets.key_footer import KeyFooter
from tui.widgets.metric_chart import MetricChart
from tui.widgets.objective_chart import ObjectiveChart
from tui.widgets.run_history import RunHistory
from tui.widgets.screen_tabs import ScreenTabs
from tui.widgets.sweep_status import SweepStatus
from tui.widgets.sweep_table import SweepTable

COMPARE_MOST = 5  # c compares the best trials, up to this many
ACTIVE = ("running", "waiting")
# each key's command: its question, its yes button, and what is said once it is sent
COMMANDS = {
    "stop_trial": ("Stop {what} ({path})? It saves last.pth.", "Stop trial", "Stopping {what}: at its next batch."),
    "prune_trial": ("Prune {what} ({path}) at its epoch's end?", "Prune", "Pruning {what} at its epoch's end."),
    "stop_sweep": (
        "Stop {what} ({path})? Its running trials stop and save last.pth; the same command resumes it.",
        "Stop sweep",
        "Stopping {what}: its trials stop at their next batch.",
    ),
}


def top_trials(view: Any, most: int = COMPARE_MOST) -> list[Any]:
    """The best trials by their best value, in the study's direction; complete ones before the others."""
    scored = [t for t in view.trials if t.best_value is not None and t.run_dir is not None]
    sign = -1 if view.direction == "maximize" else 1
    return sorted(scored, key=lambda t: (t.state != "complete", sign * t.best_value, t.number))[:most]


class OpenSweepScreen(OpenLogsScreen):
    """Ask for a sweep folder (OpenLogsScreen's dialog, its own words)."""

    def compose(self) -> ComposeResult:
        from textual.containers import Vertical
        from textual.widgets import Input

        with Vertical(id="dialog"):
            yield Label("Show a sweep: its folder (the one holding study.db).\nenter opens, escape cancels")
            yield Input(self.default, id="logs-path", select_on_focus=False)


class SweepScreen(Screen):
    # the table and the charts share the height; the status takes a second line for a read's error
    DEFAULT_CSS = """
    SweepScreen #trials { height: 1fr; min-height: 4; }
    SweepScreen #sweep-charts { height: 1fr; min-height: 8; }
    """
    AUTO_FOCUS = "#trials"  # Up/Down pick a trial at once, not the screen tabs
    POLL_S = 1.0  # the study is read again at most this often while the screen is shown
    BINDINGS = [
        Binding(
            "a",
            "open_trial",
            "Open",
            tooltip="show the selected trial on the training screen, following it while it trains (or enter)",
        ),  # fmt: skip
        Binding("c", "compare", "Compare", tooltip=f"compare the best trials (up to {COMPARE_MOST}): curves, settings"),
        Binding("t", "stop_trial", "Stop trial", tooltip="stop the selected trial (asks first; last.pth saved)"),
        Binding("p", "prune_trial", "Prune", tooltip="prune the selected trial at its next epoch's end (asks first)"),
        Binding(
            "s",
            "stop_sweep",
            "Stop sweep",
            tooltip="stop the whole sweep: running trials stop and save "
            "last.pth (asks first); the same command resumes it",
        ),  # fmt: skip
        Binding("o", "open_sweep", "Sweep", tooltip="show another sweep: its folder (by default the newest one)"),
        Binding("f5", "refresh", "Refresh", tooltip="read the study again now", show=False),
        Binding(
            "n",
            "new_sweep",
            "New sweep",
            tooltip="start a sweep of the saved settings file (its [sweep] table) in a process of its own, as "
            "`trainconsole sweep --detach` does (asks first)",
        ),
    ]

    class Read(Message):
        """What one poll found: the sweep folder (None: there is none), its view or the error reading it (both None
        when the study is as last read: `stamp` unchanged), its process' state (engine.runs.status: "running",
        "stopped", ...), and the selected trial's epochs."""

        def __init__(self, sweep_dir: Path | None, found: tuple[Any, str | None, Any], process: str, curves: tuple):
            super().__init__()
            self.sweep_dir, self.process, self.curves = sweep_dir, process, curves
            self.view, self.error, self.stamp = found

    def __init__(self) -> None:
        super().__init__()
        self.chosen: Path | None = None  # o: a folder the user named; None follows the newest sweep
        self.sweep_dir: Path | None = None
        self.view: Any = None
        self.error = ""
        self.process = ""  # the sweep process' state, as its folder says
        self._reading = False
        self._stamp: Any = None  # the study's files as last read (study_stamp)
        self._curves_of: Path | None = None

    def compose(self) -> ComposeResult:
        yield ScreenTabs("sweep")
        yield SweepStatus(id="sweep-status")
        yield SweepTable(id="trials")
        with Horizontal(id="sweep-charts"):
            yield ObjectiveChart(id="objective")
            yield MetricChart("trial loss", "loss", id="trial-chart")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.POLL_S, self._poll, pause=True)

    def on_screen_resume(self) -> None:
        self._timer.resume()
        self._poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    # -- reading ----------------------------------------------------------------
    def _poll(self) -> None:
        if self._reading:  # a slow read (a busy disk) is never queued behind another
            return
        self._reading = True
        last = (self.sweep_dir, self._stamp)
        self._read(self.chosen, Path(self.app.settings.run.runs_dir), self.selected_dir(), last)

    @work(thread=True, exit_on_error=False, group="sweep-read")
    def _read(self, chosen: Path | None, runs_dir: Path, selected: Path | None, last: tuple) -> None:
        from engine.runs.records import read_metrics
        from engine.runs.status import run_status

        sweep_dir = chosen or newest_sweep(runs_dir)
        found: tuple[Any, str | None, Any] = (None, None, None)
        process = ""
        if sweep_dir is not None:
            process = run_status(sweep_dir).status
            stamp = study_stamp(sweep_dir)
            if (sweep_dir, stamp) != last or stamp is None:  # the study is read again only once it was written
                found = read_study(sweep_dir, stamp)
        rows = read_metrics(selected / "metrics.jsonl").items if selected is not None else []
        self.post_message(self.Read(sweep_dir, found, process, (selected, rows)))

    def on_sweep_screen_read(self, message: Read) -> None:
        self._reading = False
        if message.sweep_dir != self.sweep_dir:
            self.view, self.error = None, ""  # another sweep: nothing of the last one stays
        self.sweep_dir, self.process = message.sweep_dir, message.process
        if message.error is not None or message.view is not None:
            self.error, self._stamp = message.error or "", message.stamp
        if message.view is not None:
            self.view = message.view
            self.query_one(SweepTable).show(self.view.trials, self.view.best_number)
            self.query_one(ObjectiveChart).show(self.view)
        elif self.view is None:
            self.query_one(SweepTable).show((), None)
        self._status()
        selected, rows = message.curves
        if selected is not None and selected == self.selected_dir():
            self._show_curves(rows)
        elif self.selected_dir() != self._curves_of:
            self._poll_soon()

    def _poll_soon(self) -> None:
        self.call_after_refresh(self._poll)

    def _show_curves(self, rows: list) -> None:
        self._curves_of = self.selected_dir()
        history = RunHistory.from_rows(rows)
        chart = self.query_one("#trial-chart", MetricChart)
        trial = self.selected_trial()
        chart.title = "trial loss" if trial is None else f"trial {trial.number} loss"
        chart.show(history.epochs, {"train": history.train_loss, "val": history.val_loss})

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.selected_dir() != self._curves_of:
            self._poll()  # the newly selected trial's curves now, not at the next tick

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter on a trial (the table's own key): as a."""
        self.action_open_trial()

    def _status(self) -> None:
        status = self.query_one(SweepStatus)
        status.show(self.sweep_dir, self.view, self.error, self.app.settings.run.runs_dir, self.process)

    # -- the selection --------------------------------------------------------------
    def selected_trial(self) -> Any | None:
        number = self.query_one(SweepTable).selected_number()
        if self.view is None or number is None:
            return None
        return next((t for t in self.view.trials if t.number == number), None)

    def selected_dir(self) -> Path | None:
        trial = self.selected_trial()
        return None if trial is None else trial.run_dir

    def _target(self, need_running: bool = False) -> tuple[Any, Path] | None:
        trial, run_dir = self.selected_trial(), self.selected_dir()
        if trial is None or run_dir is None:
            self.notify("No trial selected." if trial is None else f"Trial {trial.number} has no run folder yet.",
                        severity="warning")  # fmt: skip
            return None
        if need_running and trial.state not in ACTIVE:
            self.notify(f"Trial {trial.number} is {trial.state}: it is not running.", severity="warning")
            return None
        return trial, run_dir

    # -- actions ----------------------------------------------------------------
    def action_refresh(self) -> None:
        self._poll()

    def action_open_trial(self) -> None:
        target = self._target()
        if target is not None:
            self.run_worker(self.app.attach_run(target[1]))

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        best = top_trials(self.view) if self.view is not None else []
        if len(best) < 2:
            self.notify("Two trials with a value are needed to compare.", severity="warning")
            return
        try:
            screen = CompareScreen([t.run_dir for t in best])
        except Exception as e:  # a trial folder that cannot be read: one line, the screen stays
            self.notify(f"cannot compare: {e}", severity="error")
            return
        self.app.push_screen(screen)

    def action_stop_trial(self) -> None:
        self._ask_then("stop_trial")

    def action_prune_trial(self) -> None:
        self._ask_then("prune_trial")

    def action_stop_sweep(self) -> None:
        if self.sweep_dir is None:
            self.notify("No sweep to stop.", severity="warning")
            return
        self._confirm("stop_sweep", self.sweep_dir, "the sweep")

    def _ask_then(self, command: str) -> None:
        target = self._target(need_running=True)
        if target is not None:
            self._confirm(command, target[1], f"trial {target[0].number}")

    def _confirm(self, command: str, path: Path, what: str) -> None:
        from tui.screens.confirm import ConfirmScreen

        question, yes, done = COMMANDS[command]

        def answer(sure: bool | None) -> None:
            if sure:
                self._control(command, path, done.format(what=what, path=path))

        self.app.push_screen(ConfirmScreen(question.format(what=what, path=path), yes), answer)

    @work(thread=True, exit_on_error=False, group="sweep-control")
    def _control(self, command: str, path: Path, done: str) -> str:
        send_control(command, path)
        return done

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group not in ("sweep-read", "sweep-control", "sweep-start"):
            return
        if worker.state == WorkerState.ERROR:
            if worker.group == "sweep-read":  # the read itself failed (never its files' content): said, polled again
                self._reading = False
                self.error = f"cannot read the sweep: {worker.error}"
                self._status()
            else:
                self.notify(f"{worker.error}", severity="error", timeout=8)
        elif worker.state == WorkerState.SUCCESS and worker.group == "sweep-start":
            sweep_dir, pid = worker.result
            self.chosen = sweep_dir  # the sweep just started, whichever folder is newest
            self.notify(f"{sweep_dir}: sweep started in process {pid}, detached (it goes on when the console closes)")
        elif worker.state == WorkerState.SUCCESS and worker.group == "sweep-control":
            self.notify(worker.result)
        if worker.is_finished and worker.group != "sweep-read":
            self._poll()

    def action_new_sweep(self) -> None:
        from tui.screens.confirm import ConfirmScreen

        path = self.app.settings_path
        if self.app.settings.to_dict() != self.app.saved_settings:
            self.notify(f"Unsaved settings: save {path} first (screen 2): the sweep reads it.", severity="warning")
            return

        def answer(sure: bool | None) -> None:
            if sure:
                self._start_sweep(path)

        question = f"Start a sweep of {path} in a process of its own (trainconsole sweep --detach)?"
        self.app.push_screen(ConfirmScreen(question, "Start sweep"), answer)

    @work(thread=True, exit_on_error=False, group="sweep-start")
    def _start_sweep(self, settings_path: Path) -> tuple[Path, int]:
        return start_sweep(settings_path)

    def follow(self, sweep_dir: Path) -> None:
        """Show this sweep folder rather than the newest one (`trainconsole attach runs/STUDY`)."""
        self.chosen = sweep_dir
        self._poll()

    def action_open_sweep(self) -> None:
        def open_path(path: str | None) -> None:
            if path is None:
                return
            if "\0" in path or not (Path(path) / STUDY_FILE).is_file():
                self.notify(f"{path}: no {STUDY_FILE} there (not a sweep folder)", severity="error")
                return
            self.follow(Path(path))

        self.app.push_screen(OpenSweepScreen(str(self.sweep_dir or self.app.settings.run.runs_dir)), open_path)
