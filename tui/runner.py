"""The only place that starts training, or follows a run that trains elsewhere: one thread worker either way.

The worker never touches widgets: every engine event becomes an `EngineEvent`
message posted to this (invisible) widget and bubbles up to the training
screen. Stop and pause are the engine's `RunControl` flags, read by the loop
between batches; for a run in another process (attached) the same calls go
through its command channel (engine.runs.commands.RemoteControl).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message
from textual.widget import Widget

from tui.messages import AttachedHistory, EngineEvent, RunCrashed, RunEnded
from tui.widgets.epoch_progress import EpochProgress


def console_threads(requested: int = 0) -> int:
    """Torch threads next to the UI: leave one core to the event loop (else throughput collapses).

    Out of the cores this process may use (affinity, cgroup quota), as the engine counts them: a container
    given 2 of a machine's 64 cores trains on 1 thread, not 63 throttled ones.
    """
    from engine.device import usable_cores

    return requested if requested > 0 else max(1, usable_cores() - 1)


def session_over(events: list) -> bool:
    """Whether a run's events end its last session: a RunFinished or RunFailed after its last RunStarted."""
    from engine.events import RunFailed, RunFinished, RunStarted

    for event in reversed(events):
        if isinstance(event, RunStarted):
            return False
        if isinstance(event, (RunFinished, RunFailed)):
            return True
    return False


class Runner(Widget):
    """Starts, pauses and stops the run; holds its `RunControl` while it is active."""

    DEFAULT_CSS = "Runner { display: none; }"

    class Skipped(Message):
        """The reader of a followed run's files skipped lines or refused a file: one line for the user."""

        def __init__(self, note: str) -> None:
            super().__init__()
            self.note = note

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
        self.app.run_done.clear()
        self._train(settings, self.control, resume_from, self.app.run_done)
        return True

    def attach(self, run_dir: Path) -> bool:
        """Follow a run that trains in another process (False when a run is already active here)."""
        if self.active:
            return False
        from engine.runs.commands import RemoteControl

        self.control = RemoteControl(run_dir)  # not the app's run_control: quitting leaves that run training
        self.app.run_done.clear()
        self._follow(run_dir, self.control, self.app.run_done)
        return True

    @property
    def attached(self) -> bool:
        return self.active and not hasattr(self.control, "wait_while_paused")

    def toggle_pause(self) -> bool | None:
        """True when now paused, None when there is no run."""
        return self.control.toggle_pause() if self.active else None

    def stop(self, reason: str = "stopped by the user") -> None:
        if self.active:
            self.control.stop(reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training")
    def _train(self, settings: Any, control: Any, resume_from: str | Path | None, done: threading.Event) -> None:
        try:
            import torch

            from engine.api import Run

            torch.set_num_threads(console_threads(settings.device.threads))
            # ticks only as often as the bar moves: each message wakes the UI thread, which takes the GIL from training
            trainer = Run(
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
            done.set()  # the worker's own handle: the app may be gone (a hang-up waits on it)
            self.post_message(RunEnded())

    @work(thread=True, exclusive=True, exit_on_error=False, group="training")
    def _follow(self, run_dir: Path, control: Any, done: threading.Event) -> None:
        """The run's history in one message, then each new event as it is appended, until the run ends."""
        from textual.worker import get_current_worker

        from engine.events import RunFailed, RunFinished
        from engine.runs.commands import is_running
        from engine.runs.records import event_follower, read_metrics

        worker = get_current_worker()
        follower = event_follower(run_dir / "events.jsonl")
        said = ""

        def new_events() -> list:
            nonlocal said
            events = follower.read_new()
            if follower.note() != said:  # lines the reader skipped: said once, and again when the count grows
                said = follower.note()
                self.post_message(self.Skipped(said))
            return events

        try:
            history = new_events()
            # a resume of an ended run, detached, is loading: its history is drawn once its new session began,
            # not the end of its last one (which would end the following at once)
            while session_over(history) and is_running(run_dir) and not worker.is_cancelled:
                worker.cancelled_event.wait(0.2)
                history += new_events()
            metrics = read_metrics(run_dir / "metrics.jsonl")
            rows = metrics.items
            if metrics.note():
                self.post_message(self.Skipped(metrics.note()))
            for event in history:
                control.saw(event)
            self.post_message(AttachedHistory(run_dir, history, rows))
            ended = session_over(history)
            while not ended and not worker.is_cancelled:
                alive = is_running(run_dir)
                events = new_events()  # read after the look at the lock: a run that just ended has its last events
                for event in events:
                    control.saw(event)
                    self.post_message(EngineEvent(event))
                ended = any(isinstance(e, (RunFinished, RunFailed)) for e in events) or not alive
                if not events and not ended:
                    worker.cancelled_event.wait(0.2)
        except Exception as e:  # the folder became unreadable: one line, the app stays up
            self.post_message(RunCrashed(f"cannot follow {run_dir}: {e}"))
        finally:
            done.set()  # the worker's own handle: the app may be gone (a hang-up waits on it)
            self.post_message(RunEnded())

    def on_runner_skipped(self, message: Skipped) -> None:
        self.notify(message.note, severity="warning", markup=False, timeout=10)

    def _post_event(self, event: Any) -> None:
        self.post_message(EngineEvent(event))

    def on_run_ended(self, message: RunEnded) -> None:
        self.control = None
        self.app.run_control = None
