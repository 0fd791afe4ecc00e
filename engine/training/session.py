"""Where a run is kept, as the trainer sees it: a `Session` it hands checkpoints and listeners to.

The trainer knows no file. The command opens an engine.runs.session.RunSession (the run folder, its lock,
record, status, commands and writers) and gives it to the trainer; without one (`NoSession`) a run keeps
nothing but the events its listeners hear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from engine.events import RunFailed
from engine.listeners import Listeners
from engine.settings.config import Settings
from engine.training.control import RunControl


class Session(Protocol):
    resume_from: Path | None  # the checkpoint the run continues from
    run_dir: Path | None

    def load_checkpoint(self) -> dict | None: ...

    def open(self, settings: Settings, checkpoint: dict | None, history: list[dict[str, Any]],
             control: RunControl, listeners: Listeners) -> Path | None:
        """Rank 0 only: the place is taken and its listeners added, or it raises with nothing left behind."""

    def save(self, obj: Any, name: str) -> Path | None: ...

    def saved_epochs(self) -> list[int]: ...

    def remove_epoch(self, epoch: int) -> None: ...

    def record_failure(self, run_dir: Path, final: RunFailed) -> None:
        """A rank other than 0 writes the run's failure into rank 0's folder, rank 0 being dead."""

    def close(self) -> None: ...


class NoSession:
    """A run that keeps nothing: no folder, no checkpoint; its listeners hear every event."""

    resume_from = None
    run_dir = None

    def load_checkpoint(self) -> dict | None:
        return None

    def open(self, settings, checkpoint, history, control, listeners) -> Path | None:
        return None

    def save(self, obj: Any, name: str) -> Path | None:
        return None

    def saved_epochs(self) -> list[int]:
        return []

    def remove_epoch(self, epoch: int) -> None:
        pass

    def record_failure(self, run_dir: Path, final: RunFailed) -> None:
        pass

    def close(self) -> None:
        pass
