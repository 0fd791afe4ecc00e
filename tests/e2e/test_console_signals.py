"""The real console in tmux, closed under a run: a killed tmux session (SIGHUP) or SIGTERM stops the run at a batch
boundary with last.pth saved, the run is recorded as stopped, the terminal is given back as it was, and
`--resume last` continues from the exact batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from run_watch import read_jsonl, tmux_new_session, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _events(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "events.jsonl")


def _console_pid(session: str) -> int | None:
    shell = _tmux("display", "-p", "-t", session, "#{pane_pid}").strip()
    children = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
    return int(children[0]) if children else None


def _start_training(tmp_path: Path, session: str) -> tuple[Path, int]:
    """The console in tmux on a slow digits run (batch 1), started with keys 3 and s; its run folder and pid."""
    (tmp_path / "settings.toml").write_text(
        f'[run]\nruns_dir = "{tmp_path / "runs"}"\n'
        "[device]\nthreads = 1\n[data]\nbatch_size = 1\n[training]\nepochs = 100\n"
    )
    command = f"cd {tmp_path} && {TRAINCONSOLE} -c settings.toml; echo EXIT=$? > {tmp_path / 'exit.txt'}; sleep 600"
    tmux_new_session("-d", "-s", session, "-x", "100", "-y", "30", "-e", "TERM=xterm-256color", command)
    wait_until(lambda: "Environment" in _tmux("capture-pane", "-p", "-t", session), "the console", 30)
    _tmux("send-keys", "-t", session, "3")
    wait_until(lambda: "No run yet" in _tmux("capture-pane", "-p", "-t", session), "the training screen", 20)
    _tmux("send-keys", "-t", session, "s")
    run_dir = wait_until(
        lambda: next((tmp_path / "runs").glob("*"), None) if (tmp_path / "runs").is_dir() else None, "a run folder", 120
    )
    wait_until(lambda: any(e["type"] == "BatchProgressed" for e in _events(run_dir)), "training to progress", 120)
    return run_dir, _console_pid(session)


def _stopped_and_resumable(tmp_path: Path, run_dir: Path, pid: int, signal_name: str) -> None:
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the console to exit", 60)
    final = _events(run_dir)[-1]
    assert final["type"] == "RunFinished" and final["status"] == "stopped" and signal_name in final["reason"], final
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert last["batch"] > 0, "the cut should land mid-epoch"
    resumed = subprocess.run(
        [str(TRAINCONSOLE), "run", "--resume", "last", "--set", f"training.epochs={last['epoch'] + 1}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = [e for e in _events(run_dir) if e["time"] > final["time"]]
    started = next(e for e in after if e["type"] == "RunStarted")
    assert started["start_epoch"] == last["epoch"] and started["run_dir"] == str(run_dir)
    progress = [e for e in after if e["type"] == "BatchProgressed"]
    assert progress[0]["epoch"] == last["epoch"] + 1 and progress[0]["batch"] > last["batch"], (
        "it continues after the saved batch"
    )


def test_a_killed_tmux_session_stops_and_saves_the_run(tmp_path):
    session = f"tc-hup-{uuid.uuid4().hex[:8]}"
    try:
        run_dir, pid = _start_training(tmp_path, session)
        assert pid is not None
        _tmux("kill-session", "-t", session)  # the terminal goes away: SIGHUP, as when an SSH connection drops
        _stopped_and_resumable(tmp_path, run_dir, pid, "SIGHUP")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_sigterm_stops_the_run_exits_130_and_restores_the_terminal(tmp_path):
    session = f"tc-term-{uuid.uuid4().hex[:8]}"
    try:
        run_dir, pid = _start_training(tmp_path, session)
        os.kill(pid, 15)
        wait_until(lambda: (tmp_path / "exit.txt").is_file(), "the console to exit", 60)
        assert (tmp_path / "exit.txt").read_text().strip() == "EXIT=130"
        flags = _tmux(
            "display", "-p", "-t", session, "#{alternate_on} #{mouse_any_flag} #{mouse_button_flag} #{mouse_sgr_flag}"
        )
        assert flags.split() == ["0", "0", "0", "0"], f"alternate screen, mouse tracking: {flags}"
        _stopped_and_resumable(tmp_path, run_dir, pid, "SIGTERM")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_a_console_hung_up_while_it_starts_never_lingers(tmp_path):
    """A hang-up during the first paint: Textual's shutdown could block writing to the gone terminal for good."""
    (tmp_path / "settings.toml").write_text(f'[run]\nruns_dir = "{tmp_path / "runs"}"\n')
    pids = []
    for i in range(4):
        session = f"tc-early-{uuid.uuid4().hex[:8]}"
        command = f"cd {tmp_path} && exec {TRAINCONSOLE} -c settings.toml"
        tmux_new_session("-d", "-s", session, "-x", "100", "-y", "30", command)
        pid = int(_tmux("display", "-p", "-t", session, "#{pane_pid}").strip())
        wait_until(lambda: _tmux("capture-pane", "-p", "-t", session).strip(), "the first paint", 30)
        _tmux("kill-session", "-t", session)
        pids.append(pid)
    for pid in pids:
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), f"console {pid} to end after its hang-up", 60)
