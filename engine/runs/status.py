"""A run's small status file, `status.json`, for readers that tell a live run from a dead one.

    {"pid": 1234, "pid_start": 8812345, "boot_id": "3f0c...", "host": "gpu-7", "started": 1796...,
     "heartbeat": 1796..., "state": "running", "outcome": null}

`state` is starting (a detached run whose process is still loading), running, paused or ended (then
`outcome` is the RunFinished status or "failed"). The run's process rewrites it whole (atomically) on each
change and every HEARTBEAT_S while it lives. On this host the run folder's lock says whether the process
lives; where the lock cannot be opened (another user's run: it is its owner's only) the process itself is
looked for: the same boot, a live pid that started when the recorded one did. From another host (a shared
file system) a heartbeat older than STALE_S means it died.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.events import BatchProgressed, Event, RunFailed, RunFinished, RunPaused, RunResumed, RunStarted
from engine.runs.folder import lock_held, write_run_file
from engine.runs.records import StatusRecord, read_events, read_status_file

STATUS_FILE = "status.json"
HEARTBEAT_S = 5.0
STALE_S = 30.0


def write_status(run_dir: Path, **fields: Any) -> None:
    """status.json with `fields` over what it holds (a regular file inside the run folder, written whole)."""
    current = read_status(run_dir)
    status = asdict(current) if current is not None else {}
    status.update(fields)
    write_run_file(run_dir / STATUS_FILE, json.dumps(status) + "\n")


def read_status(run_dir: Path) -> StatusRecord | None:
    """The run's status.json, checked; None when it is absent, not a regular file or not a valid status."""
    found = read_status_file(Path(run_dir) / STATUS_FILE).items
    return found[0] if found else None


def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields_after_name = fh.read().rpartition(")")[2].split()
        return int(fields_after_name[19])  # after the name (fields 1 and 2) field 3 is at 0, so field 22 at 19
    except (OSError, ValueError, IndexError):
        return None


def identity(pid: int) -> dict[str, Any]:
    """What tells this process, on this boot of this host, from any other: for status.json."""
    return {"pid": pid, "pid_start": process_start(pid), "boot_id": boot_id(), "host": socket.gethostname()}


def mark_starting(run_dir: Path, pid: int) -> None:
    """A detached run's process was started and is loading (before it takes the run folder's lock)."""
    now = time.time()
    write_status(run_dir, **identity(pid), started=now, heartbeat=now, state="starting", outcome=None)


def process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    try:  # a zombie (dead, not yet reaped by its parent) counts as dead
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def process_lives(status: StatusRecord) -> bool:
    """Whether the process status.json names still lives: not after a reboot, not a later process with its pid.

    From another host only its heartbeat tells: one older than STALE_S (or as far ahead) is a dead run's.
    """
    if status.host != socket.gethostname():  # a heartbeat from the future (forged, or a clock far off) tells nothing
        return abs(time.time() - status.heartbeat) < STALE_S
    if status.boot_id is not None and status.boot_id != boot_id():
        return False
    if not process_alive(status.pid):
        return False
    # where this host knows start times its own runs record one: a status without is not ours to believe
    return status.pid_start == process_start(status.pid)


def starting(run_dir: Path) -> bool:
    """A detached run whose process lives but has not taken the lock yet."""
    status = read_status(run_dir)
    return bool(status and status.state == "starting" and process_lives(status))


def started_at(run_dir: Path) -> float:
    """When the run (or its latest resume) started: status.json's `started`, else its last RunStarted; 0 if never."""
    status = read_status(run_dir)
    if status is not None and status.started == status.started:  # not NaN
        return status.started
    starts = [e.time for e in read_events(Path(run_dir) / "events.jsonl").items if isinstance(e, RunStarted)]
    return starts[-1] if starts else 0.0


def training(run_dir: Path) -> bool:
    """A process trains in run_dir: its lock is held or, where this user cannot open the lock (another user's run)
    or the lock is on another host, status.json names a live process that is running or paused."""
    held = lock_held(run_dir)
    if held:
        return True
    status = read_status(run_dir)
    if status is None or status.state not in ("running", "paused"):
        return False
    if held is None or status.host != socket.gethostname():
        return process_lives(status)
    return False


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
            self._write(**identity(os.getpid()), started=now, heartbeat=now, state="running", outcome=None)
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
    note: str = ""  # what the reader skipped or refused in events.jsonl ("events.jsonl: 2 lines skipped ...")


def run_status(run_dir: Path) -> RunStatus:
    """What a run is now, from its lock (held while its process lives, released by the kernel on kill -9), its status
    file and its last event: a run whose process died without finishing is interrupted, never running forever."""
    found = read_events(Path(run_dir) / "events.jsonl")
    last, state = None, None
    for event in found.items:
        if not isinstance(event, BatchProgressed):
            last = event
        if type(event).__name__ not in NOT_STATE:
            state = event
    status = _status_of(run_dir, last, state)
    status.note = found.note()
    return status


def _status_of(run_dir: Path, last: Event | None, state: Event | None) -> RunStatus:
    if training(run_dir):
        if isinstance(state, RunPaused):
            return RunStatus("paused", f"paused in epoch {state.epoch} after batch {state.batch}")
        return RunStatus("running", "a process is training in this folder")
    if starting(run_dir):
        return RunStatus("starting", "a detached process is starting this run")
    if last is None:
        return RunStatus("unknown", "no events recorded")
    if isinstance(last, RunFinished):
        return RunStatus(last.status, last.reason)
    if isinstance(last, RunFailed):
        return RunStatus("failed", last.error)
    if isinstance(state, RunFinished):
        return RunStatus(state.status, state.reason)
    return RunStatus(
        "interrupted", "the process ended without finishing the run (killed or crashed); --resume continues it"
    )
