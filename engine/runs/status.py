"""A run's small status file, `status.json`, for readers that tell a live run from a dead one.

    {"pid": 1234, "host": "gpu-7", "started": 1796..., "heartbeat": 1796..., "state": "running", "outcome": null}

`state` is starting (a detached run whose process is still loading), running, paused or ended (then
`outcome` is the RunFinished status or "failed"). The run's process rewrites it whole (atomically) on each
change and every HEARTBEAT_S while it lives. On this host the run folder's lock says whether the process
lives; from another host (a shared file system) a heartbeat older than STALE_S means it died.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.events import Event, RunFailed, RunFinished, RunPaused, RunResumed, RunStarted
from engine.runs.folder import is_locked, read_jsonl, write_run_file

STATUS_FILE = "status.json"
HEARTBEAT_S = 5.0
STALE_S = 30.0


def write_status(run_dir: Path, **fields: Any) -> None:
    """status.json with `fields` over what it holds (a regular file inside the run folder, written whole)."""
    status = read_status(run_dir) or {}
    status.update(fields)
    write_run_file(run_dir / STATUS_FILE, json.dumps(status) + "\n")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        with open(run_dir / STATUS_FILE, encoding="utf-8") as fh:
            status = json.load(fh)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def mark_starting(run_dir: Path, pid: int) -> None:
    """A detached run's process was started and is loading (before it takes the run folder's lock)."""
    now = time.time()
    write_status(
        run_dir, pid=pid, host=socket.gethostname(), started=now, heartbeat=now, state="starting", outcome=None
    )


def process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) counts as dead
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def starting(run_dir: Path) -> bool:
    """A detached run whose process lives but has not taken the lock yet."""
    status = read_status(run_dir)
    return bool(status and status.get("state") == "starting" and process_alive(status.get("pid")))


class StatusWriter:
    """The listener that keeps status.json: the state on each change, the heartbeat every HEARTBEAT_S."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the heartbeat's rewrite must not undo a change of state made meanwhile

    def _write(self, **fields: Any) -> None:
        """Best effort: on a full disk the status keeps its last state, and the lock still tells this host the truth."""
        with self._lock:
            try:
                write_status(self.run_dir, **fields)
            except (OSError, ValueError):  # RunFolderError (a ValueError): the disk's failure is the run's to report
                pass

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            now = time.time()
            self._write(
                pid=os.getpid(), host=socket.gethostname(), started=now, heartbeat=now, state="running", outcome=None
            )
            self._thread = threading.Thread(target=self._beat, name="trainconsole-heartbeat", daemon=True)
            self._thread.start()
        elif isinstance(event, RunPaused):
            self._write(state="paused", heartbeat=time.time())
        elif isinstance(event, RunResumed):
            self._write(state="running", heartbeat=time.time())
        elif isinstance(event, (RunFinished, RunFailed)):
            self._stop.set()
            outcome = event.status if isinstance(event, RunFinished) else "failed"
            self._write(state="ended", outcome=outcome, heartbeat=time.time())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write(heartbeat=time.time())

    def close(self) -> None:
        self._stop.set()


# events that say nothing of the run's state (a run is paused after a RunPaused, whatever acknowledgments follow)
NOT_STATE = (
    "BatchProgressed",
    "CommandReceived",
    "ListenerFailed",
    "ThreadsChanged",
    "CheckpointSaved",
    "EpochCompleted",
)


@dataclass
class RunStatus:
    status: str  # running, paused, starting, completed, early_stopped, stopped, nan, failed, interrupted or unknown
    detail: str


def run_status(run_dir: Path) -> RunStatus:
    """What a run is now, from its lock (held while its process lives, released by the kernel on kill -9), its status
    file and its last event: a run whose process died without finishing is interrupted, never running forever."""
    last, state = None, None
    for event in read_jsonl(run_dir / "events.jsonl"):
        if event.get("type") != "BatchProgressed":
            last = event
        if event.get("type") not in NOT_STATE:
            state = event
    if is_locked(run_dir):
        if state is not None and state.get("type") == "RunPaused":
            return RunStatus("paused", f"paused in epoch {state.get('epoch')} after batch {state.get('batch')}")
        return RunStatus("running", "a process is training in this folder")
    if starting(run_dir):
        return RunStatus("starting", "a detached process is starting this run")
    if last is None:
        return RunStatus("unknown", "no events recorded")
    if last["type"] == "RunFinished":
        return RunStatus(last["status"], last.get("reason", ""))
    if last["type"] == "RunFailed":
        return RunStatus("failed", last.get("error", ""))
    if state is not None and state["type"] == "RunFinished":
        return RunStatus(state["status"], state.get("reason", ""))
    return RunStatus(
        "interrupted", "the process ended without finishing the run (killed or crashed); --resume continues it"
    )
