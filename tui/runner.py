"""The only place that starts training: one thread worker running one `Trainer`.

The worker never touches widgets: every engine event becomes an `EngineEvent`
message posted to this (invisible) widget and bubbles up to the training
screen. Stop and pause are the engine's `RunControl` flags, read by the loop
between batches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual import work
from textual.widget import Widget

from tui.messages import EngineEvent, RunCrashed, RunEnded
from tui.widgets.epoch_progress import EpochProgress


def console_threads(requested: int = 0) -> int:
    """Torch threads next to the UI: leave one core to the event loop (else throughput collapses)."""
    return requested if requested > 0 else max(1, (os.cpu_count() or 1) - 1)


class Runner(Widget):
    """Starts, pauses and stops the run; holds its `RunControl` while it is active."""

    DEFAULT_CSS = "Runner { display: none; }"

    def __init__(self) -> None:
        super().__init__()
        self.control: Any = None  # engine.training.trainer.RunControl of the active run, None when idle

    @property
    def active(self) -> bool:
        return self.control is not None

    def start(self, settings: Any, resume_from: str | Path | None = None) -> bool:
        """Start a run (False when one is already active).

        Needs engine.training.trainer imported (the app warms it up).
        """
        if self.active:
            return False
        from engine.training.trainer import RunControl

        self.control = RunControl()
        self.app.run_control = self.control
        self._train(settings, self.control, resume_from)
        return True

    def toggle_pause(self) -> bool | None:
        """True when now paused, None when there is no run."""
        return self.control.toggle_pause() if self.active else None

    def stop(self, reason: str = "stopped by the user") -> None:
        if self.active:
            self.control.stop(reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training")
    def _train(self, settings: Any, control: Any, resume_from: str | Path | None) -> None:
        try:
            import torch

            from engine.training.trainer import Trainer

            torch.set_num_threads(console_threads(settings.device.threads))
            # ticks only as often as the bar moves: each message wakes the UI thread, which takes the GIL from training
            trainer = Trainer(
                settings,
                self._post_event,
                control,
                resume_from=resume_from,
                set_threads=False,
                progress_interval_s=EpochProgress.MIN_INTERVAL_S,
                follow_free_cores=True,
            )
            trainer.setup()
            trainer.run()
        except Exception as e:  # SettingsError, CheckpointError, DataError: one line, the app stays up
            self.post_message(RunCrashed(str(e) or type(e).__name__))
        finally:
            self.post_message(RunEnded())

    def _post_event(self, event: Any) -> None:
        self.post_message(EngineEvent(event))

    def on_run_ended(self, message: RunEnded) -> None:
        self.control = None
        self.app.run_control = None
