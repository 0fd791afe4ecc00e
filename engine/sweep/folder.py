"""The sweep's own folder as a run folder for the commands: its lock, status.json, command channel and events.jsonl.

So `trainconsole stop|wait runs/<study>` work on a sweep as on a run: stop reaches the sweep's RunControl (and from
it every running trial), wait reads the sweep's final RunFinished.
"""

from __future__ import annotations

from pathlib import Path

from engine.events import RunFinished, RunStarted
from engine.listeners import Listeners
from engine.runs.commands import CommandWatcher, open_channel
from engine.runs.folder import RunLock, RunRecorder, write_run_file
from engine.runs.status import StatusWriter
from engine.settings.config import Settings
from engine.sweep.storage import SWEEP_TOML, SweepError
from engine.training.control import RunControl


def prepare_sweep_dir(sweep_dir: Path, settings_text: str) -> None:
    """The sweep folder, made or taken again; its sweep.toml, the settings the sweep runs (rewritten on a resume)."""
    if sweep_dir.is_symlink() or (sweep_dir.exists() and not sweep_dir.is_dir()):
        raise SweepError(f"{sweep_dir}: not a folder")
    if (sweep_dir / "checkpoints").exists():
        raise SweepError(f"{sweep_dir} is a run folder, not a sweep's; name another study with --study")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_run_file(sweep_dir / SWEEP_TOML, settings_text)


class SweepSession:
    """Held while the sweep's process lives: the lock, the record, the status heartbeat and the channel."""

    def __init__(self, sweep_dir: Path, control: RunControl, detached: bool = False) -> None:
        self.sweep_dir, self.control = sweep_dir, control
        self.lock = RunLock(sweep_dir)
        self.lock.acquire()  # a second sweep process on this folder is refused here ("another process ...")
        if not detached:  # a detached sweep's channel was opened before its process started
            open_channel(sweep_dir)
        self.listeners = Listeners()
        self.listeners.add(RunRecorder(sweep_dir), first=True)
        self.listeners.add(StatusWriter(sweep_dir))
        self.listeners.add(CommandWatcher(sweep_dir, control, self.listeners.emit))

    def started(self, settings: Settings, trials: int, workers: int) -> None:
        self.listeners.emit(RunStarted(str(self.sweep_dir), settings.to_dict(), "sweep", f"{workers} worker(s)", 0,
                                       0, 0, 0, "", "", 0, trials, 0, step="sweep", processes=workers))

    def finished(self, status: str, reason: str, done: int, best_value: float | None, monitor: str,
                 seconds: float) -> None:
        final = RunFinished(status, reason, done, None, best_value, monitor, str(self.sweep_dir), seconds)
        self.listeners.emit(final, final=True)

    def close(self) -> None:
        self.listeners.close()
        self.lock.release()
