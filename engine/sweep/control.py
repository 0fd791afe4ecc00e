"""Steering a sweep from another process (the console, `trainconsole stop`): stop it, stop or prune one trial.

The sweep's own folder takes the run's commands (engine.runs.commands): a stop there stops the sweep's running
trials at their next batch boundary, last.pth saved, and they are continued when the sweep is run again. A trial
is an ordinary run: stop_trial is the run's stop. prune_trial leaves a request in the trial's private .control
folder, which the trial's process takes between epochs (recorded as pruned, prune_reason "user").
"""

from __future__ import annotations

from pathlib import Path

from engine.runs.commands import CONTROL_DIR, NotRunning, is_running, send_command
from engine.runs.folder import create_private
from engine.sweep.storage import SweepError, is_sweep_dir

PRUNE_REQUEST = "prune"


def stop_sweep(sweep_dir: Path, by: str = "console") -> str:
    """Ask the sweep's process to stop; the command's id (engine.runs.commands.wait_for_ack waits for it)."""
    if not is_sweep_dir(sweep_dir):
        raise SweepError(f"{sweep_dir}: not a sweep folder (no sweep.toml)")
    return _send(sweep_dir, "stop", by)


def stop_trial(run_dir: Path, by: str = "console") -> str:
    """Stop one trial at its next batch boundary (last.pth saved); the sweep goes on with the next trial."""
    return _send(run_dir, "stop", by)


def prune_trial(run_dir: Path) -> None:
    """Ask the trial's process to prune it at the end of its current epoch."""
    run_dir = Path(run_dir)
    if not is_running(run_dir):
        raise SweepError(f"{run_dir} is not running; nothing to prune")
    folder = run_dir / CONTROL_DIR
    if folder.is_symlink() or not folder.is_dir():
        raise SweepError(f"{run_dir} takes no commands (no {CONTROL_DIR} folder)")
    try:
        create_private(folder / PRUNE_REQUEST)
    except PermissionError:
        raise SweepError(f"{run_dir} is another user's trial: only its owner may prune it") from None
    except OSError as e:
        raise SweepError(f"cannot ask {run_dir} to prune: {e.strerror or e}") from None


def take_prune_request(run_dir: Path) -> bool:
    """The trial's own side: whether a prune was asked for since the last look (the request is consumed)."""
    path = Path(run_dir) / CONTROL_DIR / PRUNE_REQUEST
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True


def _send(folder: Path, command: str, by: str) -> str:
    try:
        return send_command(Path(folder), command, by=by)
    except NotRunning as e:
        raise SweepError(str(e)) from None
    except OSError as e:
        raise SweepError(f"cannot send {command} to {folder}: {e.strerror or e}") from None
