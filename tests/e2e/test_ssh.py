"""A real SSH session on 127.0.0.1 that drops mid-epoch: the run stops at a batch boundary, and --resume goes on.

`ssh -t -t` runs trainconsole (headless, then the console) on a pty sshd gives it; the test kills the ssh client
with SIGKILL, which drops the TCP connection, so sshd hangs up the remote terminal (SIGHUP). The remote process
must then save last.pth at the exact batch, record RunFinished "stopped", exit, and leave a run that
`trainconsole run --resume last` continues from that batch to the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
import torch

from run_watch import exited, locked, read_jsonl, wait_until
from sshd import SshServer, sshd_server  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
# batch size 1 through a wide MLP: an epoch of 9,600 batches takes several seconds, so a cut made ~1 s into the
# first epoch lands mid-epoch (digits' 1,437 batches took about a second here, and a cut once came after it)
SETTINGS = """\
[run]
runs_dir = "{runs}"
name = "ssh"
seed = 0
[device]
device = "cpu"
threads = 1
[data]
dataset = "synthetic"
options = {{ samples = 12000, features = 64 }}
batch_size = 1
[model]
hidden = [1024, 512]
[training]
epochs = 3
"""
ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class SshSession:
    """The ssh client on a pty of its own (so `-t -t` has a terminal to put in raw mode), its output drained."""

    def __init__(self, server: SshServer, remote: str, size: tuple[int, int] = (120, 40)):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            server.command(remote),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)  # the client holds the only copy: its death ends our reads
        self.output = bytearray()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the client is gone
                return
            if not data:
                return
            self.output += data

    def text(self) -> str:
        """What the terminal was sent, escape sequences removed."""
        return ANSI.sub("", bytes(self.output).decode("utf-8", errors="replace"))

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def cut(self) -> None:
        """The connection drops: the client dies without a word to the server."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)

    def tail(self) -> str:
        """The end of what the terminal showed, for a time-out's message."""
        return self.text()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        os.close(self.master)


def trained_a_while(run_dir: Path) -> bool:
    """Two progress lines: the recorder writes the first ~0.1 s into the epoch and the next ~1 s later."""
    events = read_jsonl(run_dir / "events.jsonl")
    types = [e["type"] for e in events]
    return types.count("BatchProgressed") >= 2 or "EpochCompleted" in types


def trainer_pid(run_dir: Path) -> int:
    """The remote training process: the run's .lock holds its pid while it trains."""
    return int((run_dir / ".lock").read_text())


def remote(workdir: Path, *args: str) -> str:
    """The command line sshd's shell runs: trainconsole from this venv, in workdir, with what it needs."""
    path = f"{TRAINCONSOLE.parent}:/usr/local/bin:/usr/bin:/bin"
    env = {"PATH": path, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}
    words = ["env", *(f"{k}={v}" for k, v in env.items()), str(TRAINCONSOLE), *args]
    return f"cd {shlex.quote(str(workdir))} && " + " ".join(shlex.quote(w) for w in words)


def cut_and_check_the_stop(session: SshSession, run_dir: Path) -> tuple[dict, dict]:
    """Drop the connection mid-epoch: the remote process must stop at a batch boundary, save it and exit.

    Returns last.pth and the run's final event.
    """
    wait_until(lambda: trained_a_while(run_dir), "training to progress (events.jsonl)", timeout=60, shown=session.tail)
    pid = trainer_pid(run_dir)
    session.cut()
    try:
        what = f"the remote trainconsole (pid {pid}) to exit after the hang-up"
        wait_until(lambda: exited(pid) and not locked(run_dir), what, timeout=60)
    finally:
        if not exited(pid):  # the test started it: leave nothing training behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    events = read_jsonl(run_dir / "events.jsonl")
    assert (events[-1]["type"], events[-1].get("status")) == ("RunFinished", "stopped"), events[-1]
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    batches = next(e["batches_per_epoch"] for e in events if e["type"] == "RunStarted")
    assert 0 < last["batch"] < batches, (last["epoch"], last["batch"])  # cut mid-epoch: the exact batch is kept
    done = [e["epoch"] for e in events if e["type"] == "EpochCompleted"]
    assert last["epoch"] == (done[-1] if done else 0)
    ticks = [e["batch"] for e in events if e["type"] == "BatchProgressed" and e["epoch"] == last["epoch"] + 1]
    assert ticks and last["batch"] >= ticks[-1], (ticks, last["batch"])  # at or past the last batch reported done
    return last, events[-1]


def resume_continues_exactly(tmp_path: Path, run_dir: Path, last: dict) -> None:
    """`--resume last`, here without ssh, finishes the cut epoch from its saved batch, in the same run folder."""
    before = len(read_jsonl(run_dir / "events.jsonl"))
    target = last["epoch"] + 1
    done = subprocess.run(
        [str(TRAINCONSOLE), "run", "-c", "settings.toml", "--resume", "last", "--set", f"training.epochs={target}"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,  # a bound for a hang, not a speed: at load 6 (pytest-xdist) one epoch took over 120 s
    )
    assert done.returncode == 0, done.stderr
    resumed = read_jsonl(run_dir / "events.jsonl")[before:]
    started = resumed[0]
    assert (started["type"], started["start_epoch"]) == ("RunStarted", last["epoch"]), started
    first_tick = next(e for e in resumed if e["type"] == "BatchProgressed")
    # the cut came ~1 s into the epoch and this tick ~0.1 s after the start: from batch 0 it would be ~10x below
    assert first_tick["epoch"] == target and first_tick["batch"] > last["batch"], (first_tick, last["batch"])
    assert [e["epoch"] for e in resumed if e["type"] == "EpochCompleted"] == [target]
    assert (resumed[-1]["type"], resumed[-1]["status"]) == ("RunFinished", "completed"), resumed[-1]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, target + 1))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "settings.toml").write_text(SETTINGS.format(runs=tmp_path / "runs"))
    return tmp_path


def test_headless_run_survives_a_dropped_ssh_connection(sshd_server, workdir):
    run_dir = workdir / "runs" / "ssh"
    session = SshSession(sshd_server, remote(workdir, "run", "-c", "settings.toml"))
    try:
        last, final = cut_and_check_the_stop(session, run_dir)
    finally:
        session.close()
    assert "SIGHUP" in final["reason"], final  # the hang-up stopped it, as the README promises
    resume_continues_exactly(workdir, run_dir, last)


def test_console_survives_a_dropped_ssh_connection(sshd_server, workdir):
    run_dir = workdir / "runs" / "ssh"
    session = SshSession(sshd_server, remote(workdir, "-c", "settings.toml"))
    try:
        wait_until(lambda: "Quit" in session.text(), "the console to paint", timeout=60, shown=session.tail)
        session.press("3")
        wait_until(lambda: "No run yet" in session.text(), "the training screen", timeout=20, shown=session.tail)
        session.press("s")
        last, _ = cut_and_check_the_stop(session, run_dir)
    finally:
        session.close()
    resume_continues_exactly(workdir, run_dir, last)


def test_detached_run_outlives_a_dropped_ssh_connection(sshd_server, workdir):
    """`run --detach` over ssh, the session kept open, then cut: the run, in a session of its own, hears no hang-up."""
    run_dir = workdir / "runs" / "ssh"
    start = remote(workdir, "run", "--detach", "--json", "-c", "settings.toml", "--set", "model.hidden=[256]")
    session = SshSession(sshd_server, start + "; exec sleep 600")  # the terminal stays until the connection drops
    pid = 0
    try:
        wait_until(
            lambda: trained_a_while(run_dir), "the detached run to train (events.jsonl)", timeout=60, shown=session.tail
        )
        pid = json.loads((run_dir / "status.json").read_text())["pid"]
        assert json.loads(session.text().strip().splitlines()[0])["pid"] == pid
        assert "RunFinished" not in [e["type"] for e in read_jsonl(run_dir / "events.jsonl")]
        cut_at = time.time()
        session.cut()
        wait_until(lambda: exited(pid) and not locked(run_dir), "the detached run to finish", timeout=180)
    finally:
        session.close()
        if pid and not exited(pid):  # the test started it: leave nothing training behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    events = read_jsonl(run_dir / "events.jsonl")
    assert (events[-1]["type"], events[-1]["status"]) == ("RunFinished", "completed"), events[-1]
    epochs = [e for e in events if e["type"] == "EpochCompleted"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and epochs[-1]["time"] > cut_at  # it trained on after the cut
