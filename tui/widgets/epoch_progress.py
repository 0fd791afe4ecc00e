"""The batches of the current epoch: a progress bar, samples/s, the run's time left and the epoch's."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def rate_text(event) -> str:
    """Samples/s and the time left: the run's first (an upper bound under early stopping: "≤"), then the epoch's,
    which the label's ellipsis cuts first where the width runs out. An older event's: the epoch's alone."""
    if event.run_eta_s is None:
        return f"{event.samples_per_s:,.0f} samples/s  ETA {format_seconds(event.eta_s)}"
    bound = "≤" if event.run_eta_at_most else ""
    return (
        f"{event.samples_per_s:,.0f}/s  run {bound}{format_seconds(event.run_eta_s)} · "
        f"epoch {format_seconds(event.eta_s)}"
    )


class EpochProgress(Horizontal):
    # The engine ticks up to 10 times a second; each repaint holds the GIL the training
    # thread needs to dispatch its ops, so the bar moves 4 times a second (and on the last batch).
    MIN_INTERVAL_S = 0.25

    _last_shown = 0.0

    def compose(self) -> ComposeResult:
        yield Label("epoch -", id="epoch-label")
        # an empty bar until a run starts: total=None would animate (15 frames a second) with nothing running
        yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="epoch-bar")
        yield Label("", id="epoch-rate")

    def show(self, event) -> None:
        """A BatchProgressed event."""
        now = time.monotonic()
        if now - self._last_shown < self.MIN_INTERVAL_S and event.batch < event.batches:
            return
        self._last_shown = now
        self._show_position(event.epoch, event.batch, event.batches)
        self.query_one("#epoch-rate", Label).update(rate_text(event), layout=False)

    def show_paused(self, epoch: int, batch: int, batches: int) -> None:
        """The batch a pause stopped at (RunPaused), shown exactly: the throttled ticks may lag behind it."""
        if batch == 0:  # paused between epochs: the bar holds the epoch that finished
            epoch, batch = epoch - 1, batches
        if epoch >= 1:
            self._show_position(epoch, batch, batches)
        self.show_note("paused")

    def show_at(self, epoch: int, batch: int, batches: int) -> None:
        """A position read from a run's record (an attached run's history), not throttled: the rate is not known."""
        self._show_position(epoch, batch, batches)

    def _show_position(self, epoch: int, batch: int, batches: int) -> None:
        # fixed widths (app.tcss) and layout=False: up to 10 ticks a second repaint two labels,
        # never re-lay out the screen
        self.query_one("#epoch-label", Label).update(f"epoch {epoch} batch {batch}/{batches}", layout=False)
        self.query_one(ProgressBar).update(total=batches, progress=batch)

    def show_ended(self, epochs_done: int, text: str) -> None:
        """The run is over (finished, stopped, failed, its process gone): a still bar and a word, never the busy one.

        A run that ended before a batch was shown here (an attached run that had finished) shows its last epoch
        whole; one seen mid-epoch keeps the batch it stopped at.
        """
        bar = self.query_one(ProgressBar)
        if bar.total is None:  # still the "starting" animation: no batch of this run was ever shown
            if epochs_done >= 1:
                self.query_one("#epoch-label", Label).update(f"epoch {epochs_done}", layout=False)
            bar.update(total=1, progress=1 if epochs_done >= 1 else 0)
        self.show_note(text)

    def show_note(self, text: str) -> None:
        """A word in place of the rate and ETA while no batches run (paused, stopped)."""
        self.query_one("#epoch-rate", Label).update(text, layout=False)

    def reset(self) -> None:
        """A run is starting: the bar moves without a position until its first batch."""
        self.query_one("#epoch-label", Label).update("epoch -")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.query_one("#epoch-rate", Label).update("")
