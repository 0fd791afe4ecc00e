"""Runs that outlive the terminal: a run started in its own process session, and finding a run by name.

`spawn_detached` starts `python -m engine run ... --into RUN_DIR` with `setsid` (no controlling terminal:
no SIGHUP when the terminal goes), stdin from /dev/null and its output into the run folder's `output.log`,
and returns at once. The run folder is made first, so its name and path are known before the process
loads torch; its status.json says "starting" until the process takes the folder's lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from engine.io.atomic import open_append
from engine.runs.commands import is_running, open_channel
from engine.runs.folder import cannot_write
from engine.runs.status import mark_starting, started_at
from engine.settings.config import SettingsError

OUTPUT_LOG = "output.log"


def spawn_detached(run_args: Sequence[str], run_dir: Path, cwd: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start `trainconsole run RUN_ARGS` training into `run_dir` in its own session; the process, not waited for."""
    try:
        log = open_append(run_dir / OUTPUT_LOG)
    except OSError as e:
        raise cannot_write(run_dir / OUTPUT_LOG, e) from None
    open_channel(run_dir)  # before the process starts: a command sent while it loads waits in the file
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", *run_args, "--into", str(run_dir)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)
    mark_starting(run_dir, process.pid)
    return process


def run_folders(runs_dir: str | os.PathLike) -> list[Path]:
    """The run folders of runs_dir, the one started last first (status.json's start, not a file's time)."""
    base = Path(runs_dir)
    if not base.is_dir():
        return []
    folders = [
        p for p in base.iterdir() if p.is_dir() and not p.is_symlink() and (p / "checkpoints").is_dir()
    ]
    # a sweep's trials (runs_dir/<study>/trial-NNNN, beside its sweep.toml) are runs too
    sweeps = [p for p in base.iterdir() if p.is_dir() and not p.is_symlink() and (p / "sweep.toml").is_file()]
    folders += [t for s in sweeps for t in s.glob("trial-*") if not t.is_symlink() and (t / "checkpoints").is_dir()]
    return sorted(folders, key=started_at, reverse=True)


def find_run(spec: str | None, runs_dir: str | os.PathLike) -> Path:
    """A run folder: a path, a name in runs_dir, or (None) the running run of runs_dir started last."""
    if spec is None:
        running = [p for p in run_folders(runs_dir) if is_running(p)]
        if not running:
            raise SettingsError(f"no run is running in {runs_dir}; name one (trainconsole checkpoints lists them)")
        return running[0]
    for candidate in (Path(spec), Path(runs_dir) / spec):
        if (candidate / "events.jsonl").exists() or (candidate / "checkpoints").is_dir():
            return candidate
    raise SettingsError(f"{spec}: no such run (a run folder, or the name of one in {runs_dir})")


def start_detached_run(settings, settings_path: str | os.PathLike) -> tuple[Path, int]:
    """A console's detached run of `settings` (saved or not): its folder and process id.

    The settings are written into the new run folder (the run rewrites the same file), and the user's
    modules are still found beside their settings file.
    """
    import threading

    from engine.runs.folder import create_run_dir, write_run_file
    from engine.settings.config import to_toml
    from engine.settings.defaults import run_name

    run_dir = create_run_dir(settings.run.runs_dir, run_name(settings))
    write_run_file(run_dir / "settings.toml", to_toml(settings))
    code_folder = Path(settings_path).resolve().parent
    process = spawn_detached(["-c", str(run_dir / "settings.toml"), "--code-folder", str(code_folder)], run_dir)
    threading.Thread(target=process.wait, name="trainconsole-reaper", daemon=True).start()  # no zombie while it lives
    return run_dir, process.pid
