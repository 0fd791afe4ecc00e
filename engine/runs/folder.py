"""The run folder: `runs_dir/<name>/` and what lives in it.

    settings.toml     the resolved settings of the run
    signature.json    the user's signature of those settings (engine.runs.signatures)
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
import stat
import time
from pathlib import Path
from typing import Any

from engine.io.atomic import (
    NotARegularFile,
    atomic_write,
    open_append,
    open_regular,
    refuse_unless_regular,
    write_all,
)
from engine.runs.records import read_jsonl  # noqa: F401 - where tools and tests have long found it
from engine.settings.config import SettingsError
from engine.events import BatchProgressed, EpochCompleted, Event, RunFinished, RunPaused, recorded

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SIGNATURE_FILE = "signature.json"
RUN_FILES = ("settings.toml", SIGNATURE_FILE, "metrics.jsonl", "events.jsonl", ".lock", "status.json", "output.log")
CHECKPOINT_FILES = ("best.pth", "last.pth")
OWNER_ONLY = 0o600  # the lock and the control files: whoever may open them may steer the run


class RunFolderError(SettingsError):
    """A run folder's file cannot be written: a symlink in the folder, a read-only or full disk.

    The message is one line naming the file.
    """


def cannot_write(path: Path, e: OSError) -> RunFolderError:
    """The one-line error of a failed write in a run folder ("...: No space left on device")."""
    if isinstance(e, NotARegularFile):
        return RunFolderError(str(e))
    return RunFolderError(f"cannot write {path}: {e.strerror or e}")


def checkpoints_dir(run_dir: Path) -> Path:
    """run_dir/checkpoints, checked to be a real folder inside the run folder.

    A symlink there would send writes and deletions elsewhere.
    """
    path = run_dir / "checkpoints"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such folder; {run_dir} is not a complete run folder") from None
    if not stat.S_ISDIR(mode):
        kind = "symbolic link" if stat.S_ISLNK(mode) else "file"
        raise RunFolderError(
            f"{path} is a {kind}; a run folder's checkpoints are written only in a real folder inside it"
        )
    return path


def check_run_folder(run_dir: Path) -> None:
    """Before anything is written: every file a run writes or deletes is absent or a regular file inside run_dir."""
    ck_dir = checkpoints_dir(run_dir)
    names = (
        [run_dir / n for n in RUN_FILES] + [ck_dir / n for n in CHECKPOINT_FILES] + sorted(ck_dir.glob("epoch_*.pth"))
    )
    try:
        for path in names:
            refuse_unless_regular(path)
    except NotARegularFile as e:
        raise RunFolderError(str(e)) from None


def write_run_file(path: Path, text: str) -> None:
    """A run folder's whole-file write (settings.toml, metrics.jsonl on resume): atomic, never through a symlink."""
    try:
        atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), follow_symlinks=False)
    except OSError as e:
        raise cannot_write(path, e) from None


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


def discard_new_run_dir(run_dir: Path) -> None:
    """Remove a folder that create_run_dir made when the run's set-up then failed.

    Only the files a set-up writes, never more.
    """
    for path in [run_dir / n for n in RUN_FILES] + [run_dir / ".control" / "commands.jsonl"]:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
    for folder in (run_dir / "checkpoints", run_dir / ".control", run_dir):
        try:
            folder.rmdir()  # fails, leaving it, when anything else is inside
        except OSError:
            pass


class RunLock:
    """An exclusive flock on run_dir/.lock for as long as a process trains there (released by the kernel on kill -9)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            create_private(self.path)
            self.fd = open_regular(self.path, os.O_RDWR)
            os.fchmod(self.fd, OWNER_ONLY)  # a lock made by an older version, readable by all
        except OSError as e:
            if isinstance(e, NotARegularFile):
                raise cannot_write(self.path, e) from None
            raise RunFolderError(f"{self.path.parent}: cannot write in this run folder: {e.strerror or e}") from None
        if fcntl is not None:
            for attempt in range(5):  # is_locked() holds the lock for an instant while it looks
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 4:
                        self.release()
                        raise SettingsError(
                            f"{self.path.parent}: another process is training in this run folder"
                        ) from None
                    time.sleep(0.05)
        try:  # the pid is for people; a full disk here costs nothing
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def create_private(path: Path) -> None:
    """Create `path` empty and readable by its owner only, unless it exists (never through a link).

    A lock or a control file that another user can open is one they can flock, and so lock the run out.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, OWNER_ONLY))
    except FileExistsError:
        pass


def lock_held(run_dir: Path) -> bool | None:
    """Whether a process holds run_dir's lock: None when this user cannot tell (the lock is its owner's only)."""
    if fcntl is None:
        return None
    try:  # O_NONBLOCK: a FIFO named .lock must not hang a listing
        fd = os.open(run_dir / ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        return None
    except OSError:  # absent, a symlink: no process holds it
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases our own flock
    return False


def is_locked(run_dir: Path) -> bool:
    """Whether a process trains in run_dir, as its lock says; reads only, so a read-only run folder answers too."""
    return bool(lock_held(run_dir))


class RunRecorder:
    """The run folder's listener: every event to events.jsonl and each epoch's record to metrics.jsonl.

    One whole line per write.

    Unlike other listeners it is `required`: a run that cannot be recorded is not worth going on with. The
    first failed write raises RunFolderError; after it the recorder writes nothing more (the disk is full or
    gone) and raises nothing more, so recording the RunFailed itself cannot hide the error.
    """

    PROGRESS_EVERY_S = 1.0
    required = True

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.failed: RunFolderError | None = None
        self.events = self._open(run_dir / "events.jsonl")
        try:
            self.metrics = self._open(run_dir / "metrics.jsonl")
        except BaseException:
            os.close(self.events)
            raise
        self._last_progress = 0.0
        self._held: BatchProgressed | None = None  # the newest progress the throttle left out

    @staticmethod
    def _open(path: Path) -> int:
        try:
            return open_append(path)
        except OSError as e:
            raise cannot_write(path, e) from None

    def _write(self, fd: int, name: str, data: dict[str, Any]) -> None:
        if self.failed is not None:
            return
        try:
            write_all(fd, (to_json(data) + "\n").encode("utf-8"))
        except OSError as e:
            self.failed = cannot_write(self.run_dir / name, e)
            raise self.failed from None

    def on_event(self, event: Event) -> None:
        if isinstance(event, BatchProgressed):
            if event.time - self._last_progress < self.PROGRESS_EVERY_S:
                self._held = event
                return
            self._last_progress, self._held = event.time, None
        elif isinstance(event, (RunPaused, RunFinished)) and self._held is not None:
            # the position the run pauses or stops at is never thinned away: an attached console shows it
            held, self._held = self._held, None
            self._write(self.events, "events.jsonl", held.to_dict())
        elif isinstance(event, EpochCompleted):
            self._held = None
            self._write(self.metrics, "metrics.jsonl", event.metrics())
        self._write(self.events, "events.jsonl", event.to_dict())

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """On resume: metrics.jsonl becomes exactly the checkpoint's history (drops epochs it never saved), written
        with the precision of a fresh run's records (the history holds each number as measured)."""
        path = self.run_dir / "metrics.jsonl"
        write_run_file(path, "".join(to_json(recorded(r)) + "\n" for r in rows))
        os.close(self.metrics)
        self.metrics = self._open(path)

    def close(self) -> None:
        if self.events < 0:
            return
        for fd in (self.events, self.metrics):
            try:
                os.close(fd)
            except (
                OSError
            ):  # a network file system may report a failed write only here; the run's outcome is already known
                pass
        self.events = self.metrics = -1
