"""A run's folder, as one session around the trainer: the folder, its lock, its record, its status heartbeat,
its command channel and its writers (engine.runs.folder and the modules beside it).

The command opens a `RunSession` and hands it to the trainer (engine.training.trainer), which calls it to
load the checkpoint it resumes from, to open the folder once the run is set up, and to save checkpoints.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.events import RunFailed
from engine.io.atomic import remove_stale_temporaries
from engine.listeners import Listeners
from engine.runs import checkpoints as ck
from engine.runs.commands import CommandWatcher, open_channel
from engine.runs.folder import (RunLock, RunRecorder, check_run_folder, checkpoints_dir, create_run_dir,
                                discard_new_run_dir, write_run_file)
from engine.runs.signatures import with_signature, write_folder_signature
from engine.runs.status import StatusWriter
from engine.settings.config import Settings, to_toml
from engine.training.control import RunControl

Writers = Callable[[Settings, Path], Sequence[Any]]  # the listeners that write beside the record (metrics.csv, ...)


class RunSession:
    """One run's folder: a new one, the resumed run's, or `into` (one made beforehand, a detached run's)."""

    def __init__(self, *, resume_from: str | Path | None = None, into: str | Path | None = None,
                 writers: Writers | None = None):
        self.resume_from = Path(resume_from) if resume_from else None
        self.into = Path(into) if into else None
        self.writers = writers
        self.run_dir: Path | None = None
        self.lock: RunLock | None = None
        self.recorder: RunRecorder | None = None  # the run's own record (events.jsonl, metrics.jsonl)
        self.signature: str | None = None  # the user's signature of the run's settings, put in its checkpoints

    def load_checkpoint(self) -> dict | None:
        return ck.load_checkpoint(self.resume_from) if self.resume_from else None

    def open(self, settings: Settings, checkpoint: dict | None, history: list[dict[str, Any]],
             control: RunControl, listeners: Listeners) -> Path:
        """The folder taken, locked and recorded in, with its listeners; nothing left of a new one that fails."""
        # a checkpoint copied out of its run folder continues in a new folder, never in its parent
        in_run_folder = self.resume_from is not None and self.resume_from.parent.name == "checkpoints"
        if in_run_folder:
            self.run_dir = self.resume_from.parent.parent
        else:
            self.run_dir = self.into or create_run_dir(settings.run.runs_dir, settings.run.name)
        try:
            self._take(settings, checkpoint, history, control, listeners)
        except BaseException:
            listeners.close()  # closed with the listeners: nothing more is recorded in it
            self.close()
            if not in_run_folder and self.into is None:  # a new folder that never started a run is not left
                discard_new_run_dir(self.run_dir)
            raise
        return self.run_dir

    def _take(self, settings: Settings, checkpoint: dict | None, history: list[dict[str, Any]],
              control: RunControl, listeners: Listeners) -> None:
        run_dir = self.run_dir
        check_run_folder(run_dir)  # a downloaded run folder's symlinks are refused before anything is written
        self.lock = RunLock(run_dir)
        self.lock.acquire()
        remove_stale_temporaries(checkpoints_dir(run_dir))
        write_run_file(run_dir / "settings.toml", to_toml(settings))  # the run's record, rewritten whole on resume
        self.signature, _ = write_folder_signature(run_dir, settings)  # the user's own run: its code is theirs
        recorder = self.recorder = RunRecorder(run_dir)
        listeners.add(recorder, first=True)  # the run's own record hears every event before the others
        if checkpoint is not None:
            recorder.rewrite_metrics(history)
        listeners.add(StatusWriter(run_dir))
        if self.into is None:  # a detached run's channel was opened before its process started
            open_channel(run_dir)
        listeners.add(CommandWatcher(run_dir, control, listeners.emit))
        for writer in self.writers(settings, run_dir) if self.writers else ():
            listeners.add(writer)

    def save(self, obj: Any, name: str) -> Path:
        path = checkpoints_dir(self.run_dir) / name  # checked at each save: the folder may have become a link
        ck.atomic_save(with_signature(obj, self.signature), path)
        return path

    def saved_epochs(self) -> list[int]:
        return [n for n in map(ck.epoch_of_name, checkpoints_dir(self.run_dir).glob("epoch_*.pth")) if n is not None]

    def remove_epoch(self, epoch: int) -> None:
        (checkpoints_dir(self.run_dir) / f"epoch_{epoch}.pth").unlink(missing_ok=True)  # a link goes, not its target

    def record_failure(self, run_dir: Path, final: RunFailed) -> None:
        try:
            recorder = RunRecorder(run_dir)  # a line rank 0 left half-written is ended first
            recorder.on_event(replace(final, run_dir=str(run_dir)))
            recorder.close()
            StatusWriter(run_dir).on_event(final)
        except (OSError, ValueError):
            pass  # the launcher's line still says it

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
