"""The run folder: `runs_dir/<name>/` and what lives in it.

    settings.toml     the resolved settings of the run
    metrics.jsonl     one JSON object per completed epoch
    events.jsonl      every event of the run, append-only (what a console attaches to)
    checkpoints/      best.pth, last.pth, epoch_N.pth
    .lock             held (flock) while a process trains in this folder

Whether a run is running, finished, stopped, failed or interrupted is read
back from the last event and the lock, so a `kill -9` shows as interrupted.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine.config import SettingsError, atomic_write_text
from engine.events import BatchProgressed, Event

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TERMINAL = {"RunFinished", "RunFailed"}


def _json_default(value: Any) -> Any:
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats are written as null-safe strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(_finite(data), default=_json_default, allow_nan=False)


def create_run_dir(runs_dir: str | os.PathLike, name: str) -> Path:
    """A new folder runs_dir/name, or name-2, name-3, ... when taken: nothing is ever overwritten."""
    base = Path(runs_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingsError(f"run.runs_dir = '{runs_dir}': cannot create it: {e.strerror}") from None
    if "/" in name or name in (".", ".."):
        raise SettingsError(f"run.name = '{name}': must be a plain folder name")
    for n in range(1, 100_000):
        path = base / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise SettingsError(f"run.runs_dir = '{runs_dir}': cannot create {path}: {e.strerror}") from None
        (path / "checkpoints").mkdir()
        return path
    raise SettingsError(f"run.name = '{name}': too many runs with this name in {runs_dir}")


class RunLock:
    """An exclusive flock on run_dir/.lock for as long as a process trains there (released by the kernel on kill -9)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.fh = None

    def acquire(self) -> None:
        self.fh = open(self.path, "a+")
        if fcntl is not None:
            for attempt in range(5):  # is_locked() holds the lock for an instant while it looks
                try:
                    fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 4:
                        self.fh.close()
                        self.fh = None
                        raise SettingsError(f"{self.path.parent}: another process is training in this run folder") from None
                    time.sleep(0.05)
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def is_locked(run_dir: Path) -> bool:
    path = run_dir / ".lock"
    if fcntl is None or not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


class RunRecorder:
    """Writes a run's events to events.jsonl and its epochs to metrics.jsonl, one flushed line each."""

    PROGRESS_EVERY_S = 1.0

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.events = open(run_dir / "events.jsonl", "a", encoding="utf-8")
        self.metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._last_progress = 0.0

    def record(self, event: Event) -> None:
        if isinstance(event, BatchProgressed):
            if event.time - self._last_progress < self.PROGRESS_EVERY_S:
                return
            self._last_progress = event.time
        self.events.write(to_json(event.to_dict()) + "\n")
        self.events.flush()

    def record_epoch(self, metrics: dict[str, Any]) -> None:
        self.metrics.write(to_json(metrics) + "\n")
        self.metrics.flush()

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """On resume: metrics.jsonl becomes exactly the checkpoint's history (drops epochs it never saved)."""
        self.metrics.close()
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(to_json(r) + "\n" for r in rows))
        self.metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def close(self) -> None:
        self.events.close()
        self.metrics.close()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Complete JSON lines of a file being appended to; a torn last line is skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
    except FileNotFoundError:
        return


@dataclass
class RunStatus:
    status: str  # "running", "completed", "early_stopped", "stopped", "nan", "failed", "interrupted" or "unknown"
    detail: str


def run_status(run_dir: Path) -> RunStatus:
    last = None
    for event in read_jsonl(run_dir / "events.jsonl"):
        if event.get("type") != "BatchProgressed":
            last = event
    if is_locked(run_dir):
        return RunStatus("running", "a process is training in this folder")
    if last is None:
        return RunStatus("unknown", "no events recorded")
    if last["type"] == "RunFinished":
        return RunStatus(last["status"], last.get("reason", ""))
    if last["type"] == "RunFailed":
        return RunStatus("failed", last.get("error", ""))
    return RunStatus("interrupted", "the process ended without finishing the run (killed or crashed)")
