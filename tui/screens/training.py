"""Screen 3: start, pause and stop a run; watch it epoch by epoch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from rich.text import Text
from textual.widgets import Static

from engine.events import (
    BatchProgressed,
    Diagnostic,
    EpochCompleted,
    ListenerFailed,
    RunFailed,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStarted,
    ThreadsChanged,
)
from engine.runs.records import read_metrics
from tui.widgets.key_footer import KeyFooter
from tui.messages import AttachedHistory, EngineEvent, RunCrashed, RunEnded
from engine.io.text import printable
from tui.data_text import data_line, data_text, path_text
from tui.runner import Runner
from tui.widgets.diagnostic_badge import DiagnosticBadge
from tui.widgets.epoch_progress import EpochProgress
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart
from tui.widgets.run_history import RunHistory
from tui.widgets.screen_tabs import ScreenTabs


def pause_point(epoch: int, batch: int, batches: int) -> str:
    """Where a RunPaused(epoch, batch) stopped, as the progress bar shows it: the loop pauses
    before drawing the next batch, so batch 0 of epoch N+1 is the end of epoch N."""
    if batch == 0:
        return f"after epoch {epoch - 1}" if epoch > 1 else "before epoch 1"
    return f"in epoch {epoch} after batch {batch}/{batches}"


# Fast epochs (digits: ~20 a second) are drawn together, with every epoch received so far, at most as often as
# the progress bar moves: the table and charts show the epoch that just ended by the bar's next move. Drawing
# each one re-laid out and repainted the screen, and a key press waited behind those repaints; drawing twice a
# second left them up to 10 epochs behind the bar.
EPOCH_SHOW_INTERVAL_S = EpochProgress.MIN_INTERVAL_S
# Epochs that arrive while another screen is shown, or just after the return to this one, are
# drawn this long after the return: the screen first paints as it was left (its charts' text is
# kept), so the key is answered at once, and the table rows and both charts follow.
RETURN_DRAW_DELAY_S = 0.1


def _threads(n: int, processes: int = 1) -> str:
    threads = f"{n} thread{'s' * (n != 1)}"
    return f"{processes} processes (DDP) x {threads}" if processes > 1 else threads


class TrainingScreen(Screen):
    BINDINGS = [
        Binding("s", "start", "Start", tooltip="start a run with the current settings"),
        Binding("p", "pause", "Pause/resume", tooltip="pause / resume at the next batch"),
        Binding("x", "stop", "Stop & save", tooltip="stop at the next batch and save last.pth"),
        Binding(
            "b",
            "start_detached",
            "Start detached",
            tooltip="start a run in a process of its own: it goes on when the console or the terminal closes",
        ),
        Binding(
            "e",
            "explain",
            "Explain",
            tooltip="explain the latest epoch's badge: its evidence, what it usually means, what to try",
        ),
    ]
    AUTO_FOCUS = "#epoch-table"  # Up/Down/PageUp scroll the epochs (the screen tabs would take the focus otherwise)

    def __init__(self) -> None:
        super().__init__()
        # each engine event this screen shows, by type (an event it does not show, e.g. CheckpointSaved, is passed over)
        self._handlers: dict[type, Any] = {
            RunStarted: self._on_run_started,
            ThreadsChanged: self._on_threads_changed,
            BatchProgressed: self._on_batch_progressed,
            EpochCompleted: self._on_epoch_completed,
            RunPaused: self._on_run_paused,
            RunResumed: self._on_run_resumed,
            RunFinished: self._on_run_finished,
            RunFailed: self._on_run_failed,
            ListenerFailed: self._on_listener_failed,
        }
        self.history = RunHistory()
        self._processes = 1  # the run's world size (RunStarted)
        self.run_dir: str | None = None
        self.batches = 0  # per epoch, from RunStarted
        self.outcome: str = "idle"  # idle, starting, running, paused, completed/early_stopped/stopped/nan, failed
        self._unshown: list[Any] = []  # EpochCompleted events received but not drawn yet (see _show_epochs)
        self._last_shown = 0.0
        self._left = False  # another screen was shown since this one was: a resume is a return
        self._show_timer: Timer | None = None
        self._show_queued = False  # a draw waits behind the messages already queued (see _request_show)
        self._returning = False  # the screen is back but has not painted yet: the return's timer draws
        # each epoch's badge, for `e`: (diagnostic, recorded); an epoch known from metrics.jsonl only has its status
        self.badges: dict[int, tuple[Diagnostic, bool]] = {}

    def compose(self) -> ComposeResult:
        yield ScreenTabs("training")
        yield Runner()
        yield Static("No run yet. Press [b]s[/b] to start one with the current settings.", id="run-status")
        with Horizontal(id="run-info-row"):
            yield DiagnosticBadge(id="badge")
            yield Static("", id="run-info")
        yield EpochProgress(id="progress")
        with Horizontal(id="charts"):
            yield MetricChart("loss", "loss", id="loss-chart")
            yield MetricChart("accuracy", "accuracy", id="acc-chart")
        yield EpochTable(id="epoch-table")
        yield KeyFooter()

    @property
    def runner(self) -> Runner:
        return self.query_one(Runner)

    # -- actions --------------------------------------------------------------
    def action_start(self) -> None:
        # several processes train under torchrun, in processes of their own: such a run is always detached
        if self.app.settings.run.detach or self.app.settings.device.processes > 1:
            self.action_start_detached()
        else:
            self.start_run(self.app.settings)

    def start_run(self, settings: Any, resume_from: str | Path | None = None) -> None:
        if self.runner.active or self.outcome == "starting":
            self.notify("A run is already active: stop it first (x).", severity="warning")
            return
        if settings.device.processes > 1:
            n = settings.device.processes
            self.notify(
                f"This console trains in one process. To go on in {n}: "
                f"trainconsole run --resume {resume_from or 'RUN'} --detach --processes {n}",
                severity="warning",
                markup=False,
            )
            settings = settings.replace("device.processes", 1)
        self.outcome = "starting"
        resuming = (" (resuming ", path_text(resume_from), ")") if resume_from else ()
        self._status(data_line("Starting: loading PyTorch, data and model ...", *resuming))
        self.app.when_torch_ready(lambda: self._launch(settings, resume_from))

    def _launch(self, settings: Any, resume_from: str | Path | None) -> None:
        self._reset()
        self.runner.start(settings, resume_from)

    def attach(self, run_dir: Path) -> None:
        """Show a run that trains in another process: its history, then its progress; p and x steer it there."""
        if self.runner.active:
            self.notify("A run is already active here: stop it first (x).", severity="warning")
            return
        self._reset()
        self.outcome = "starting"
        self._status(data_line("Attaching to ", path_text(run_dir), " ..."))
        self.runner.attach(Path(run_dir))

    def action_start_detached(self) -> None:
        """Start a run in a process of its own (it outlives the console and the terminal), and attach to it."""
        from engine.runs.detach import start_detached_run

        if self.runner.active:
            self.notify("A run is already active: stop it first (x).", severity="warning")
            return
        try:
            run_dir, pid = start_detached_run(self.app.settings, self.app.settings_path)
        except Exception as e:  # a folder that cannot be made or written: one line, the console stays
            self.notify(f"cannot start a detached run: {e}", severity="error", markup=False)
            return
        self.notify(
            f"{run_dir}: training in process {pid}, detached (it goes on when the console closes)", markup=False
        )
        self.attach(run_dir)

    def action_pause(self) -> None:
        try:
            paused = self.runner.toggle_pause()
        except Exception as e:  # an attached run that ended meanwhile (NotRunning) or a channel that cannot be written
            self.notify(str(e), severity="error", markup=False)
            return
        if paused is None:
            self.notify("No active run.", severity="warning")
        elif paused:
            self._status("Pausing at the next batch ...")

    def action_stop(self) -> None:
        if not self.runner.active:
            self.notify("No active run.", severity="warning")
            return
        try:
            # an attached run's own reason names the attached console (engine.runs.commands.stop_reason)
            self.runner.stop("stopped from the console (x): at a batch boundary, last.pth saved")
        except Exception as e:  # as in action_pause
            self.notify(str(e), severity="error", markup=False)
            return
        self._status("Stopping at the next batch boundary (saving last.pth) ...")

    def action_explain(self) -> None:
        from tui.screens.explain import ExplainScreen

        if not self.badges:
            self.notify("No epoch has ended yet: e explains an epoch's badge once it has one.", severity="warning")
            return
        self.app.push_screen(ExplainScreen([(n, d, recorded) for n, (d, recorded) in sorted(self.badges.items())]))

    def _keep_status_badges(self, rows: list[dict]) -> None:
        """Epochs read from metrics.jsonl: their badge's status, until an event brings its message and evidence."""
        for row in rows:
            if row.get("diagnostic") and row["epoch"] not in self.badges:
                self.badges[row["epoch"]] = (Diagnostic(row["diagnostic"], ""), False)

    # -- engine events ----------------------------------------------------------
    def on_engine_event(self, message: EngineEvent) -> None:
        handler = self._handlers.get(type(message.event))
        if handler is not None:
            handler(message.event)

    def on_attached_history(self, message: AttachedHistory) -> None:
        """Draw an attached run as it stands: its last session's start, every epoch's record, its state now."""
        starts = [i for i, e in enumerate(message.events) if isinstance(e, RunStarted)]
        if not starts:
            waiting = ": waiting for it to start ..."
            self._status(self._attached_to(message.run_dir, waiting))
            return
        last_start = starts[-1]
        self._on_run_started(message.events[last_start], earlier_rows=False)
        for row in message.rows:
            self.history.add(row)
        self.query_one(EpochTable).add_epochs(message.rows)
        epochs = [e for e in message.events if isinstance(e, EpochCompleted)]
        self.badges.update((e.epoch, (e.diagnostic, True)) for e in epochs)
        self._keep_status_badges(message.rows)
        if epochs:
            self.query_one(DiagnosticBadge).show(epochs[-1].diagnostic)
        self._redraw_charts(epochs[-1].onset_epoch if epochs else None)
        self._update_info(self.history.lr[-1] if self.history.lr else None)
        keys = " (p pauses, x stops and saves; q leaves it training)"
        self._status(self._attached_to(message.run_dir, keys))
        self._replay_state(message.events[last_start + 1 :])

    @staticmethod
    def _attached_to(run_dir: Path, then: str) -> Text:
        """The run's name first: a long path would push it past a narrow terminal's edge."""
        return data_line(("Attached", "bold"), " to ", data_text(Path(run_dir).name, "bold"), " in ",
                         path_text(Path(run_dir).parent), then)

    def _replay_state(self, events: list) -> None:
        """The session's pauses, resumes and end in order, the bar at the batch each of them came at (the last
        progress before it, an epoch's end counting as its last batch), then at the newest: not at a pause long
        resumed, nor busy after the end."""
        at = None  # (epoch, batch, batches) of the newest progress not shown yet
        for event in events:
            if isinstance(event, BatchProgressed):
                at = (event.epoch, event.batch, event.batches)
            elif isinstance(event, EpochCompleted):  # the record thins the progress out: an epoch's end is exact
                at = (event.epoch, self.batches, self.batches)
            elif isinstance(event, (RunPaused, RunResumed, RunFinished, RunFailed)):
                if at is not None:
                    self.query_one(EpochProgress).show_at(*at)
                    at = None
                self._handlers[type(event)](event)
        if at is not None:
            self.query_one(EpochProgress).show_at(*at)

    def _on_run_started(self, e: RunStarted, earlier_rows: bool = True) -> None:
        self.run_dir = e.run_dir
        self.batches = e.batches_per_epoch
        self.outcome = "running"
        if e.start_epoch and earlier_rows:
            # the epochs before the resume only: by now the loop may have appended newer ones,
            # which their EpochCompleted adds
            earlier = [
                row for row in read_metrics(Path(e.run_dir) / "metrics.jsonl").items if row["epoch"] <= e.start_epoch
            ]
            for row in earlier:
                self.history.add(row)
            self._keep_status_badges(earlier)
            self.query_one(EpochTable).add_epochs(earlier)
            self._redraw_charts(None)
        self._status(
            data_line(
                ("Running", "bold"),
                " ",
                path_text(e.run_dir),
                f"  (resumed after epoch {e.start_epoch})" if e.start_epoch else "",
            )
        )
        self._device = f"{printable(e.device)} ({printable(e.device_name)}), {e.precision}"
        self._processes = e.processes
        self._threads = _threads(e.threads, e.processes)
        self._model_line = (
            f"{printable(e.settings['model']['name'])} {e.parameters:,} params | "
            f"{printable(e.settings['data']['dataset'])} {e.train_samples}/{e.val_samples}"
        )
        if e.baseline_loss is not None:  # the constant predictor's: what the badges judge learning against
            acc = f"acc {e.baseline_acc:.1%}" if e.baseline_acc is not None else "mean predictor"
            self._model_line += f" | baseline loss {e.baseline_loss:.3f}, {acc}"
        self._gpu_line = ""
        self._cuda_index = int(e.device.partition(":")[2] or 0) if e.device.startswith("cuda") else None
        self._update_info(None)

    def _on_threads_changed(self, e: ThreadsChanged) -> None:
        busy = " (cores busy elsewhere)" if e.threads < e.previous and not e.reason else ""
        self._threads = _threads(e.threads, self._processes) + busy
        self._update_info(self.history.lr[-1] if self.history.lr else None)

    def _on_batch_progressed(self, e: BatchProgressed) -> None:
        self.query_one(EpochProgress).show(e)

    def _on_epoch_completed(self, e: EpochCompleted) -> None:
        if self.history.epochs and e.epoch <= self.history.epochs[-1]:
            return  # an attached run's epoch already drawn from its history
        self.badges[e.epoch] = (e.diagnostic, True)
        self.history.add(e.metrics())
        self._unshown.append(e)
        self._request_show()

    def _request_show(self) -> None:
        """One draw for every epoch received until it runs, at most one per EPOCH_SHOW_INTERVAL_S."""
        if self._show_timer is not None or self._show_queued:
            return  # a draw is coming, and it takes this epoch too
        wait = self._last_shown + EPOCH_SHOW_INTERVAL_S - time.monotonic()
        if wait > 0:
            self._show_timer = self.set_timer(wait, self._show_epochs)
        else:  # behind the messages already queued: a burst that waited for the UI thread is drawn once, whole
            self._show_queued = True
            self.call_later(self._show_epochs)

    def _show_epochs(self) -> None:
        """Put the epochs that arrived since the last call on the screen: table rows, badge, charts, info line."""
        self._show_queued = False
        if self._returning:  # the return's own draw (_after_return) takes them, once it has painted
            return
        if self._show_timer is not None:
            self._show_timer.stop()
            self._show_timer = None
        if not self.is_current:  # nobody sees it: drawn on the return (on_screen_resume)
            return
        self._last_shown = time.monotonic()
        events, self._unshown = self._unshown, []
        if not events:
            return
        self.query_one(EpochTable).add_epochs([e.metrics() for e in events])
        e = events[-1]
        self.query_one(DiagnosticBadge).show(e.diagnostic)
        self._redraw_charts(e.onset_epoch)
        self._update_info(e.lr)

    def on_screen_resume(self) -> None:
        # nothing is drawn before a return has painted: not the epochs that came meanwhile, nor
        # a draw that was due, nor charts whose new data never reached the screen before it was left
        if not self._left:  # the first show: there is nothing to return to
            return
        self._left = False
        self._returning = True
        if self._show_timer is not None:
            self._show_timer.stop()
        charts = list(self.query(MetricChart))
        for chart in charts:
            chart.hold()
        self._show_timer = self.set_timer(RETURN_DRAW_DELAY_S, lambda: self._after_return(charts))

    def on_screen_suspend(self) -> None:
        self._left = True

    def _after_return(self, charts: list[MetricChart]) -> None:
        self._returning = False
        for chart in charts:
            chart.release()
        self._show_epochs()

    def _on_run_paused(self, e: RunPaused) -> None:
        self._show_epochs()
        self.outcome = "paused"
        self.query_one(EpochProgress).show_paused(e.epoch, e.batch, self.batches)
        self._status(
            data_line(
                ("Paused", "bold"),
                f" {pause_point(e.epoch, e.batch, self.batches)} (p resumes, x stops)  ",
                path_text(self.run_dir or ""),
            )
        )

    def _on_run_resumed(self, e: RunResumed) -> None:
        self.outcome = "running"
        self._status(data_line(("Running", "bold"), " ", path_text(self.run_dir or "")))

    def _on_run_finished(self, e: RunFinished) -> None:
        self._show_epochs()
        self.outcome = e.status
        best = ""
        if e.best_value is not None:
            best = f"; best {printable(e.monitor)} {e.best_value:.4f} at epoch {e.best_epoch}"
        word = {
            "completed": "Run finished",
            "early_stopped": "Run finished (early stop)",
            "stopped": "Run stopped",
            "nan": "Run stopped: NaN",
        }[e.status]
        ended = {"completed": "finished", "early_stopped": "early stop", "stopped": "stopped", "nan": "NaN"}[e.status]
        self.query_one(EpochProgress).show_ended(e.epochs_completed, ended)  # an attached run that had ended too
        self._status(
            data_line((word, "bold"), ": ", data_text(e.reason), best, "\nRun folder: ", path_text(e.run_dir)),
            "-done" if e.status in ("completed", "early_stopped") else "-warning",
        )

    def _on_run_failed(self, e: RunFailed) -> None:
        self._show_epochs()
        self.outcome = "failed"
        self.query_one(EpochProgress).show_ended(e.epoch, "failed")
        self._status(
            data_line(("Run failed", "bold"), ": ", data_text(e.error), "\nRun folder: ", path_text(e.run_dir or "-")),
            "-error",
        )

    def _on_listener_failed(self, e: ListenerFailed) -> None:
        self.notify(
            f"{e.listener} stopped listening: {e.error}; the run goes on", severity="warning", timeout=10, markup=False
        )

    def on_run_crashed(self, message: RunCrashed) -> None:
        self.outcome = "failed"
        self.query_one(EpochProgress).show_ended(0, "failed")
        self._status(data_line(("Run could not start", "bold"), ": ", data_text(message.error)), "-error")

    def on_run_ended(self, message: RunEnded) -> None:
        if self.outcome in ("starting", "running", "paused"):
            self.outcome = "interrupted"
            self.query_one(EpochProgress).show_ended(len(self.history.epochs), "interrupted")
            self._status(
                "[b]Run interrupted[/b]: its process ended without finishing (killed?); "
                "r on the checkpoints screen resumes it from last.pth",
                "-error",
            )

    # -- helpers ------------------------------------------------------------------
    def _reset(self) -> None:
        self._unshown.clear()  # a new run: nothing of the old one is still to draw
        self._show_epochs()  # (stops a pending draw)
        self.history = RunHistory()
        self.badges = {}
        self.run_dir = None
        self.query_one(EpochTable).reset()
        self.query_one(EpochProgress).reset()
        self.query_one(DiagnosticBadge).reset("-")
        self.query_one("#run-info", Static).update("")
        for chart in self.query(MetricChart):
            chart.clear()

    def _redraw_charts(self, onset: int | None) -> None:
        h = self.history
        self.query_one("#loss-chart", MetricChart).show(h.epochs, {"train": h.train_loss, "val": h.val_loss}, onset)
        title, series = h.second_chart()  # accuracy, or a regression's R²
        self.query_one("#acc-chart", MetricChart).show(h.epochs, series, onset, title=title)

    def _update_info(self, lr: float | None) -> None:
        gpu = ""
        if getattr(self, "_cuda_index", None) is not None:
            from engine.device import gpu_memory

            m = gpu_memory(self._cuda_index)
            gpu = f" | GPU {m['used'] / 1e9:.1f}/{m['total'] / 1e9:.1f} GB"
        # one line (app.tcss: nowrap): no new layout needed
        lr_text = "-" if lr is None else f"{lr:.2e}"
        self.query_one("#run-info", Static).update(  # Text: the names in it are data, never markup
            Text(f"{self._device}, {self._threads}{gpu} | {self._model_line} | lr {lr_text}"), layout=False
        )

    def _status(self, text: str | Text, variant: str = "") -> None:
        """`text`: our own words as markup, or a line with data in it as Text (data_line)."""
        status = self.query_one("#run-status", Static)
        status.update(text)
        status.remove_class("-done", "-warning", "-error")
        if variant:
            status.add_class(variant)
