"""The learning-rate finder's dialog: the sweep runs in a thread worker, its curve and suggestion are shown, and
`a` hands the suggested rate back to the configuration screen (which puts it in the form, unsaved)."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from engine.io.text import printable
from tui.data_text import data_text
from tui.lr_curve import draw_curve
from tui.widgets.metric_chart import CachedPlot


class LrFindScreen(ModalScreen[float | None]):
    """Dismissed with the suggested rate (`a`), or None (`escape`)."""

    BINDINGS = [
        Binding("a", "apply", "Apply rate", tooltip="put the suggested rate in training.lr (unsaved until ctrl+s)"),
        Binding("escape", "close", "Close", tooltip="close; a sweep under way is cancelled, nothing changes"),
    ]
    DEFAULT_CSS = """
    LrFindScreen { align: center middle; }
    #lr-find { width: 90; max-width: 95%; height: 30; max-height: 95%; border: thick $primary;
               background: $surface; padding: 0 1; }
    #lr-find CachedPlot { height: 1fr; }
    #lr-find-summary { height: auto; }
    """

    class Progressed(Message):
        """One step of the sweep done (posted from the worker thread; a burst collapses to the newest)."""

        def __init__(self, step: int, steps: int) -> None:
            super().__init__()
            self.step, self.steps = step, steps

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LrFindScreen.Progressed)

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self.settings = settings
        self.result: Any = None  # engine.training.lr_find.LrFindResult once the sweep is done
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="lr-find"):
            yield Label("Learning-rate finder: sweeping ...", id="lr-find-title")
            yield ProgressBar(total=self.settings.lr_find.steps, id="lr-find-progress", show_eta=False)
            yield CachedPlot()
            yield Static("", id="lr-find-summary", markup=False)
            yield Label("a apply the suggested rate   escape close", id="lr-find-keys")

    def on_mount(self) -> None:
        self._sweep()

    def on_unmount(self) -> None:
        self._cancel.set()  # the worker checks it between steps

    @work(thread=True, exclusive=True, exit_on_error=False, group="lr-find")
    def _sweep(self) -> Any:
        from engine.training.lr_find import find_lr

        steps = self.settings.lr_find.steps
        return find_lr(
            self.settings,
            on_point=lambda i, _: self.post_message(self.Progressed(i + 1, steps)),
            cancelled=self._cancel.is_set,
        )

    def on_lr_find_screen_progressed(self, message: Progressed) -> None:
        self.query_one(ProgressBar).update(progress=message.step)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "lr-find" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        title = self.query_one("#lr-find-title", Label)
        if event.state == WorkerState.ERROR:
            title.update(data_text(f"Learning-rate finder: failed: {worker.error}"))
            return
        self.show_result(worker.result)

    def show_result(self, result: Any) -> None:
        from engine.training.lr_find import describe

        self.result = result
        self.query_one(ProgressBar).display = False
        plot = self.query_one(CachedPlot)
        draw_curve(plot.plt, result)
        plot.changed()
        suggested = "no suggestion" if result.suggestion is None else f"suggested {result.suggestion:.3g}"
        self.query_one("#lr-find-title", Label).update(data_text(f"Learning-rate finder: {suggested}"))
        summary = Text(printable(describe(result, self.settings), keep="\n"))  # two lines
        self.query_one("#lr-find-summary", Static).update(summary)

    def action_apply(self) -> None:
        if self.result is not None and self.result.suggestion is not None:
            self.dismiss(self.result.suggestion)

    def action_close(self) -> None:
        self.dismiss(None)
