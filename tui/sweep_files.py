"""The sweep screen's dealings with the disk and the engine, off the UI thread: which sweep folder is the newest,
whether its study changed since it was read, reading it, steering it, starting one."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from engine.sweep.storage import STUDY_DB as STUDY_FILE


def newest_sweep(runs_dir: str | os.PathLike) -> Path | None:
    """The sweep folder (one holding a study.db file) under `runs_dir` whose study changed last."""
    found: list[tuple[float, Path]] = []
    try:
        with os.scandir(runs_dir) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    study = os.stat(Path(entry.path) / STUDY_FILE, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(study.st_mode):  # a link, a FIFO or a folder there is no study of ours
                    found.append((study.st_mtime, Path(entry.path)))
    except OSError:
        return None
    return max(found)[1] if found else None


def read_view(sweep_dir: Path) -> Any:
    from engine.sweep.view import read_sweep

    return read_sweep(sweep_dir)


def study_stamp(sweep_dir: Path) -> tuple | None:
    """The size and change time of study.db and SQLite's journals beside it: a write changes one of them."""
    stamp = []
    for name in (STUDY_FILE, f"{STUDY_FILE}-wal", f"{STUDY_FILE}-journal"):
        try:
            info = os.stat(sweep_dir / name, follow_symlinks=False)
        except OSError:
            stamp.append(None)
            continue
        stamp.append((info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamp) if stamp[0] is not None else None


def read_study(sweep_dir: Path, stamp: Any) -> tuple[Any, str | None, Any]:
    """(view, None, stamp), or (None, the error's first line, stamp) for a half-written or foreign study."""
    try:
        return read_view(sweep_dir), None, stamp
    except Exception as e:  # its one line; the last good view stays on screen
        return None, (f"{e}".splitlines() or [type(e).__name__])[0], stamp


def send_control(command: str, path: Path) -> Any:
    """engine.sweep.control's `command` ("stop_sweep", "stop_trial", "prune_trial") on a sweep or trial folder."""
    from engine.sweep import control

    commands = {"stop_sweep": control.stop_sweep, "stop_trial": control.stop_trial, "prune_trial": control.prune_trial}
    return commands[command](path)


def start_sweep(settings_path: Path) -> tuple[Path, int]:
    """`trainconsole sweep -c FILE --detach`, as typed in a terminal here: the sweep folder and its process' id.

    Raises RuntimeError with the command's own last line when it refuses (no [sweep] table, a sweep running)."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "engine", "sweep", "-c", str(settings_path), "--detach", "--json"]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    try:
        started = json.loads(lines[-1]) if done.returncode == 0 and lines else None
        return Path(str(started["sweep_dir"])), int(started["pid"])
    except (ValueError, TypeError, KeyError):
        said = (done.stderr.strip().splitlines() or lines or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(said) from None  # the command's own line: `trainconsole: error: ...`
