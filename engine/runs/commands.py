"""Pause, resume and stop a run from another process: `trainconsole stop|pause|resume RUN`, an attached console.

The channel is an append-only file, `.control/commands.jsonl`, in a folder only the run's owner may enter
(0700): a command is one JSON line. The running process watches the file between batches (a thread sets the
same RunControl flags the console and the signals set) and acknowledges each command with a
CommandReceived event in events.jsonl, which the sender waits for. A file needs no socket path (at most
~108 bytes, too short for deep run folders) and works for a run on a shared file system too.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from engine.events import CommandReceived, Event, RunFailed, RunFinished, RunPaused, RunResumed, RunStarted
from engine.io.atomic import open_append, write_all
from engine.runs.folder import OWNER_ONLY, cannot_write, create_private
from engine.runs.records import CommandRecord, LineFollower, command_record, event_follower
from engine.runs.status import run_status, starting, training
from engine.training.control import RunControl

CONTROL_DIR = ".control"
COMMANDS_FILE = "commands.jsonl"
COMMANDS = ("pause", "resume", "stop")
POLL_S = 0.2
# who sends a command, as the run's stop reason names them; a record from an older sender has no "by"
SENDERS = {"cli": "by trainconsole stop", "console": "from an attached console"}
STOP_DETAIL = "at a batch boundary, last.pth saved"


def stop_reason(by: str) -> str:
    """The stop reason of a stop command from `by`: who asked, in the words the run's last line shows."""
    return f"stopped {SENDERS.get(by, 'by a stop command')}: {STOP_DETAIL}"


class NotRunning(Exception):
    """The run a command was sent to is not running: the message says what it is instead."""


def commands_path(run_dir: Path) -> Path:
    return run_dir / CONTROL_DIR / COMMANDS_FILE


def open_channel(run_dir: Path) -> Path:
    """The run's (empty) command file, in its 0700 folder: made by whoever starts the run, before it runs."""
    folder = run_dir / CONTROL_DIR
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise cannot_write(folder, OSError(f"{folder} is not a folder of the run"))
        os.chmod(folder, 0o700)
        create_private(folder / COMMANDS_FILE)
        fd = open_append(folder / COMMANDS_FILE)
        os.fchmod(fd, OWNER_ONLY)
        os.ftruncate(fd, 0)  # a resumed run does not replay the commands of an earlier session
        os.close(fd)
    except OSError as e:
        raise cannot_write(folder / COMMANDS_FILE, e) from None
    return folder / COMMANDS_FILE


def is_running(run_dir: Path) -> bool:
    """A process trains in run_dir now, or a detached one is starting to."""
    return training(run_dir) or starting(run_dir)


def send_command(run_dir: Path, command: str, by: str = "cli") -> str:
    """Append `command` to the run's channel; its id, which the CommandReceived acknowledging it carries.

    `by`: who asks (SENDERS), for the run's record of who stopped it.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    if not is_running(run_dir):
        status = run_status(run_dir)
        raise NotRunning(f"{run_dir} is not running ({status.status}: {status.detail}); nothing to {command}")
    path = commands_path(run_dir)
    command_id = uuid.uuid4().hex[:12]
    try:
        fd = open_append(path)
    except FileNotFoundError:
        raise NotRunning(
            f"{run_dir} takes no commands (no {CONTROL_DIR}/{COMMANDS_FILE}: started by an older trainconsole?)"
        ) from None
    except PermissionError:
        raise NotRunning(f"{run_dir} is another user's run: only its owner may {command} it") from None
    try:
        record = {"command": command, "id": command_id, "time": time.time(), "pid": os.getpid(), "by": by}
        line = json.dumps(record) + "\n"
        write_all(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return command_id


def wait_for_ack(run_dir: Path, command_id: str, timeout_s: float = 30.0) -> CommandReceived | None:
    """The CommandReceived event with that id, once the run wrote it; None when the run ended or the time ran out."""
    follower = event_follower(run_dir / "events.jsonl")
    deadline = time.monotonic() + timeout_s
    while True:
        for event in follower.read_new():
            if isinstance(event, CommandReceived) and event.id == command_id:
                return event
        if time.monotonic() > deadline or not is_running(run_dir):
            for event in follower.read_new():  # the ack may have come with the run's last events
                if isinstance(event, CommandReceived) and event.id == command_id:
                    return event
            return None
        time.sleep(0.05)


class CommandWatcher:
    """The listener that hears the channel for the running process: it applies each command to the RunControl
    and acknowledges it through `emit`. It watches from RunStarted to the run's end."""

    def __init__(self, run_dir: Path, control: RunControl, emit: Callable[[Event], None]) -> None:
        self.run_dir, self.control, self.emit = run_dir, control, emit
        self.follower = LineFollower(commands_path(run_dir), command_record)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            for command in self.follower.read_new():
                self._apply(command)

    def _apply(self, command: CommandRecord) -> None:
        name, control, changed = command.command, self.control, True
        if name == "stop":
            control.stop(stop_reason(command.by))
            detail = "stopping at the next batch boundary (last.pth is saved)"
        elif name in ("pause", "resume") and control.paused == (name == "pause"):
            # nothing to do; the sender says so and exits with EXIT_ALREADY
            changed, detail = False, "already paused" if name == "pause" else "already running"
        elif name == "pause":
            control.pause()
            detail = "pausing at the next batch boundary"
        elif name == "resume":
            control.resume()
            detail = "resuming"
        else:
            detail = f"unknown command {name!r}, ignored"
        self.emit(CommandReceived(name, command.id, detail, max(command.pid, 0), changed))

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted) and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="trainconsole-commands", daemon=True)
            self._thread.start()
        elif isinstance(event, (RunFinished, RunFailed)):
            self._stop.set()

    def close(self) -> None:
        self._stop.set()


class RemoteControl:
    """A RunControl's interface for a run in another process: each call sends a command over its channel.

    `paused` follows the run's own RunPaused and RunResumed events (`saw`), so that a toggle sends the right one.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.paused = False
        self.stop_requested = False

    def saw(self, event: Event) -> None:
        if isinstance(event, RunPaused):
            self.paused = True
        elif isinstance(event, RunResumed):
            self.paused = False

    def stop(self, reason: str = "") -> None:
        """`reason` is the run's to write: it names the attached console as who asked."""
        send_command(self.run_dir, "stop", by="console")
        self.stop_requested = True

    def toggle_pause(self) -> bool:
        """Ask the run to pause (or resume); True when it was asked to pause."""
        send_command(self.run_dir, "resume" if self.paused else "pause", by="console")
        return not self.paused
