"""Where a sweep's study lives and how it is opened: runs/<study>/study.db (SQLite) unless --storage names another.

A sweep folder is recognised by its `sweep.toml` (the settings it was started with) beside `study.db`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

from engine.settings.config import SettingsError

STUDY_DB = "study.db"
SWEEP_TOML = "sweep.toml"
BEST_SETTINGS = "best-settings.toml"
SQLITE_MAGIC = b"SQLite format 3\x00"


class SweepError(SettingsError):
    """A sweep that cannot be read, started or steered: the message says why in one line."""


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / SWEEP_TOML).is_file()


def default_url(sweep_dir: Path) -> str:
    """The SQLite URL of the study beside the trials (absolute: the workers may start elsewhere)."""
    return f"sqlite:///{Path(sweep_dir).absolute() / STUDY_DB}"


def read_only_url(sweep_dir: Path) -> str:
    """study.db opened read-only (a viewer never creates or migrates it); refused unless it is a SQLite file."""
    path = Path(sweep_dir).absolute() / STUDY_DB
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SweepError(f"{path}: no study here (no {STUDY_DB}); is it a sweep folder?") from None
    except OSError as e:
        raise SweepError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SweepError(f"{path}: not a regular file")
        head = os.read(fd, len(SQLITE_MAGIC))
    finally:
        os.close(fd)
    if head != SQLITE_MAGIC:
        raise SweepError(f"{path}: not a SQLite database (damaged, or another kind of file)")
    return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"


def describe(error: Exception) -> str:
    """An error of SQLAlchemy or Optuna in one line: its type and the first line of its message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:300]}" if first else type(error).__name__
