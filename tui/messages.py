"""Engine events wrapped as Textual messages, plus the console's own few messages.

The training worker posts these from its thread (`post_message` is
thread-safe); widgets never see the worker itself.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from engine.events import BatchProgressed


class EngineEvent(Message):
    """One engine event (engine.events.*), delivered on the UI thread."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # a burst of progress ticks collapses to the newest one
        return (
            isinstance(self.event, BatchProgressed)
            and isinstance(message, EngineEvent)
            and isinstance(message.event, BatchProgressed)
        )


class AttachedHistory(Message):
    """What a run in another process did before the console attached: its events so far and its epochs' records."""

    def __init__(self, run_dir: Any, events: list, rows: list[dict]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.events = events
        self.rows = rows


class RunCrashed(Message):
    """The run could not start (bad settings, unreadable checkpoint) or died outside the engine's own handling."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RunEnded(Message):
    """The training worker is done (after RunFinished, RunFailed or RunCrashed): another run may start."""


class TorchReady(Message):
    """The background warm-up imported torch and the engine."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error
