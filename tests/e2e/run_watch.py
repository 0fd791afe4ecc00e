"""What the end-to-end tests read of a run that another process trains: its records, its process, its lock."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Callable


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file that may be being appended to."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("\n")]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0, shown: Callable[[], str] | None = None):
    """Poll `condition` until true and return its value; a time-out says what was awaited and what `shown` shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    seen = f"; the terminal shows:\n{shown()}" if shown is not None else ""
    raise AssertionError(f"timed out waiting for {what}{seen}")


def exited(pid: int) -> bool:
    """Gone, or a zombie with no thread left (an orphan whose reaper has not come by yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    # a leader that has exited shows Z while its other threads are still going down
    return stat.rsplit(")", 1)[1].split()[0] == "Z" and threads <= 1


def locked(run_dir: Path) -> bool:
    """Whether a process holds the run folder's lock (a training process does while it lives)."""
    with open(run_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def tmux_new_session(*args: str, socket: str | None = None, env: dict | None = None) -> None:
    """`tmux [-L socket] new-session ARGS`, asked again while the server of the last killed session is going away.

    Killing a server's last session takes the server down; a session asked for meanwhile meets "server exited
    unexpectedly", and the next try starts a new server.
    """
    import subprocess

    command = ["tmux", *(["-L", socket] if socket else []), "new-session", *args]
    for _ in range(20):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if "server exited unexpectedly" not in done.stderr:
            break
        time.sleep(0.1)
    assert done.returncode == 0, done.stderr
