"""Runs that outlive the terminal, end to end: the real CLI in subprocesses and the real console in tmux.

A run started with `trainconsole run --detach` trains in a process session of its own: killing the tmux
session that started it changes nothing, `trainconsole attach` shows its history and then its progress and
steers it (p pauses and resumes, x stops it and saves the exact batch, q leaves it training), a SIGKILLed run
is listed as interrupted, and `wait` exits with the run's code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from run_watch import exited, locked, read_jsonl, tmux_new_session, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
# digits at batch size 2: an epoch of 719 batches takes about a second here, so a run of many epochs is mid-epoch
SETTINGS = """\
[run]
runs_dir = "{runs}"
seed = 0
[device]
device = "cpu"
threads = 1
[data]
batch_size = 2
[training]
epochs = {epochs}
"""
# the attach test's epochs: 1,437 batches through [256, 128], ~1.5 s each, so that a console starting sees few pass
SLOW_EPOCHS = ["--set", "data.batch_size=1", "--set", "model.hidden=[256, 128]"]


def read_events(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "events.jsonl")


def metrics_rows(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "metrics.jsonl")


def of_type(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["type"] == name]


def training(run_dir: Path) -> bool:
    """Past its set-up: a batch or an epoch of its first session recorded."""
    return any(e["type"] in ("BatchProgressed", "EpochCompleted") for e in read_events(run_dir))


def trainconsole(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def start_detached(cwd: Path, *args: str) -> tuple[Path, int]:
    """`run --detach --json`: the run's folder and process id, from its one line."""
    done = trainconsole(cwd, "run", "--detach", "--json", "-c", "settings.toml", *args)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    return Path(facts["run_dir"]), facts["pid"]


class Tmux:
    """A tmux server of the test's own (its own socket), so that nothing else's sessions are touched."""

    def __init__(self) -> None:
        self.socket = f"tc-detach-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=ENV)

    def new(self, name: str, cwd: Path, command: str) -> None:
        tmux_new_session(
            "-d", "-s", name, "-x", "120", "-y", "40", "-c", str(cwd), command, socket=self.socket, env=ENV
        )

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name).stdout

    def wait(self, name: str, condition, what: str, timeout: float = 60.0) -> str:
        """The screen, once `condition` holds for it."""

        def shown() -> str:
            text = self.screen(name)
            return text if condition(text) else ""

        return wait_until(shown, what, timeout, lambda: self.screen(name))

    def keys(self, name: str, keys: str) -> None:
        self("send-keys", "-t", name, keys)

    def close(self) -> None:
        self("kill-server")


@pytest.fixture
def tmux():
    server = Tmux()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def leftovers():
    """Run folders whose training process the test must not leave behind, whatever happened."""
    run_dirs: list[Path] = []
    yield run_dirs
    for run_dir in run_dirs:
        try:
            pid = json.loads((run_dir / "status.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        if isinstance(pid, int) and pid > 0 and not exited(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def workdir(tmp_path: Path, epochs: int) -> Path:
    (tmp_path / "settings.toml").write_text(SETTINGS.format(runs=tmp_path / "runs", epochs=epochs))
    return tmp_path


def row(screen: str, epoch: int) -> str | None:
    """The epoch table's row of `epoch` on the screen, if shown."""
    return next((line for line in screen.splitlines() if line.split()[:1] == [str(epoch)] and "%" in line), None)


def shows_row(screen: str, record: dict) -> bool:
    """The row of a metrics.jsonl record, with its own losses."""
    line = row(screen, record["epoch"])
    return line is not None and f"{record['train_loss']:.4f}" in line and f"{record['val_loss']:.4f}" in line


def test_run_outlives_the_tmux_session_that_started_it(tmp_path, tmux, leftovers):
    work = workdir(tmp_path, epochs=3)
    # `sh -c`, no job control: without a session of its own the run would be in the pane's foreground process
    # group, and the hang-up of the killed session would stop it ("stopped", SIGHUP) instead of nothing
    command = f"{TRAINCONSOLE} run --detach --json -c settings.toml > started.json; exec sleep 600"
    tmux.new("starter", work, command)
    started = work / "started.json"
    facts = json.loads(wait_until(lambda: started.exists() and started.read_text().strip(), "the run's line"))
    run_dir, pid = Path(facts["run_dir"]), facts["pid"]
    leftovers.append(run_dir)
    wait_until(lambda: training(run_dir), "the detached run to train")
    assert not of_type(read_events(run_dir), "EpochCompleted")
    killed_at = time.time()
    assert tmux("kill-session", "-t", "starter").returncode == 0
    assert tmux("has-session", "-t", "starter").returncode != 0

    waited = trainconsole(work, "wait", str(run_dir), timeout=300)
    assert waited.returncode == 0, waited.stderr
    events = read_events(run_dir)
    assert (events[-1]["type"], events[-1]["status"]) == ("RunFinished", "completed"), events[-1]
    assert [e["epoch"] for e in of_type(events, "EpochCompleted")] == [1, 2, 3]
    assert of_type(events, "EpochCompleted")[0]["time"] > killed_at  # it trained on after the session died
    assert len(of_type(events, "RunStarted")) == 1
    # `wait` returns once the run is recorded as ended; its process may still be going down
    wait_until(lambda: exited(pid), "the detached run's process to exit", timeout=60)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "ended"


def test_attach_shows_history_and_steers_the_run(tmp_path, tmux, leftovers):
    work = workdir(tmp_path, epochs=200)
    run_dir, pid = start_detached(work, *SLOW_EPOCHS)
    leftovers.append(run_dir)
    wait_until(lambda: len(metrics_rows(run_dir)) >= 2, "two epochs of the detached run", timeout=90)

    # q leaves the run training: the console exits, the run's process keeps its lock and goes on
    before = metrics_rows(run_dir)
    tmux.new("watch", work, f"{TRAINCONSOLE} attach {run_dir}; echo console exited $?; exec sleep 600")
    # the run's name comes with its RunStarted, which may be read after the history on a busy machine
    screen = tmux.wait("watch", lambda t: "Attached" in t and shows_row(t, before[-1]) and run_dir.name in t,
                       "the attached history and the run's name")
    assert "Attached" in screen and str(run_dir.name) in screen
    tmux.wait("watch", lambda t: row(t, before[-1]["epoch"] + 1) is not None, "an epoch trained after the attach")
    tmux.keys("watch", "q")
    tmux.wait("watch", lambda t: "console exited 0" in t, "the console to quit")
    assert locked(run_dir) and not exited(pid)
    assert not of_type(read_events(run_dir), "RunFinished")
    tmux("kill-session", "-t", "watch")

    # a second console: the history again, then p pauses, p resumes and x stops the run there
    tmux.new("steer", work, f"{TRAINCONSOLE} attach {run_dir}; echo console exited $?; exec sleep 600")
    last = metrics_rows(run_dir)[-1]
    tmux.wait("steer", lambda t: "Attached" in t and shows_row(t, last), "the history on attaching again")
    tmux.wait("steer", lambda t: row(t, last["epoch"] + 1) is not None, "a new epoch on the second console")

    tmux.keys("steer", "p")
    paused = wait_until(lambda: of_type(read_events(run_dir), "RunPaused"), "the run to pause")[-1]
    rows_when_paused = len(metrics_rows(run_dir))
    tmux.wait("steer", lambda t: "Paused" in t, "the console to say paused")
    listed = trainconsole(work, "checkpoints", "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["paused"], listed.stdout
    events = read_events(run_dir)
    after_pause = events[events.index(paused) + 1 :]
    assert not [e for e in after_pause if e["type"] in ("BatchProgressed", "EpochCompleted")], after_pause
    assert len(metrics_rows(run_dir)) == rows_when_paused  # it stopped growing while the listing ran

    tmux.keys("steer", "p")
    wait_until(lambda: of_type(read_events(run_dir), "RunResumed"), "the run to resume")
    wait_until(lambda: len(metrics_rows(run_dir)) > rows_when_paused, "metrics.jsonl to grow again")
    assert json.loads(trainconsole(work, "checkpoints", "runs", "--json").stdout)[0]["status"] == "running"

    def into_an_epoch() -> bool:  # x then lands mid-epoch, not in the end of an epoch's validation and saves
        done = len(metrics_rows(run_dir))
        return any(e["epoch"] == done + 1 for e in of_type(read_events(run_dir), "BatchProgressed"))

    wait_until(into_an_epoch, "progress inside an epoch")
    tmux.keys("steer", "x")
    wait_until(lambda: of_type(read_events(run_dir), "RunFinished"), "the run to stop")
    wait_until(lambda: exited(pid) and not locked(run_dir), "the run's process to exit")
    tmux.wait("steer", lambda t: "Run stopped" in t, "the console to say stopped")
    events = read_events(run_dir)
    assert (events[-1]["type"], events[-1]["status"]) == ("RunFinished", "stopped"), events[-1]
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    batches = of_type(events, "RunStarted")[0]["batches_per_epoch"]
    assert last["epoch"] == of_type(events, "EpochCompleted")[-1]["epoch"]
    assert 0 <= last["batch"] < batches, (last["epoch"], last["batch"])
    ticks = [e["batch"] for e in of_type(events, "BatchProgressed") if e["epoch"] == last["epoch"] + 1]
    if last["batch"]:  # stopped mid-epoch: the exact batch kept, at or past the last one reported
        assert ticks and last["batch"] >= ticks[-1], (ticks, last["batch"])
    else:  # the command met the end of an epoch (its validation and saves): that boundary is the position
        assert not ticks, ticks
    tmux.keys("steer", "q")
    tmux.wait("steer", lambda t: "console exited 0" in t, "the console to quit after the run ended")

    # --resume last continues from that batch, to the end of the cut epoch
    target = last["epoch"] + 1
    resumed = trainconsole(work, "run", "-c", "settings.toml", "--resume", "last", "--set", f"training.epochs={target}")
    assert resumed.returncode == 0, resumed.stderr
    later = read_events(run_dir)[len(events) :]
    assert (later[0]["type"], later[0]["start_epoch"]) == ("RunStarted", last["epoch"]), later[0]
    first_tick = of_type(later, "BatchProgressed")[0]
    assert first_tick["epoch"] == target and first_tick["batch"] > last["batch"], (first_tick, last["batch"])
    assert [e["epoch"] for e in of_type(later, "EpochCompleted")] == [target]
    assert (later[-1]["type"], later[-1]["status"]) == ("RunFinished", "completed"), later[-1]


def test_a_killed_detached_run_is_interrupted_never_running(tmp_path, tmux, leftovers):
    work = workdir(tmp_path, epochs=100)
    run_dir, pid = start_detached(work)
    leftovers.append(run_dir)
    wait_until(lambda: training(run_dir), "the detached run to train")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: exited(pid) and not locked(run_dir), "the killed process to be gone")

    listed = trainconsole(work, "checkpoints", "runs")
    assert listed.returncode == 0, listed.stderr
    assert "[interrupted]" in listed.stdout and "running" not in listed.stdout, listed.stdout
    as_json = trainconsole(work, "checkpoints", "runs", "--json")
    assert [r["status"] for r in json.loads(as_json.stdout)] == ["interrupted"], as_json.stdout
    stopped = trainconsole(work, "stop", str(run_dir))
    assert stopped.returncode == 1 and stopped.stdout == "", stopped
    assert len(stopped.stderr.strip().splitlines()) == 1 and "not running" in stopped.stderr, stopped.stderr
    waited = trainconsole(work, "wait", str(run_dir))
    assert waited.returncode == 1 and "interrupted" in waited.stderr, waited

    tmux.new("console", work, f"{TRAINCONSOLE} -c settings.toml")
    tmux.wait("console", lambda t: "Quit" in t, "the console to paint")
    tmux.keys("console", "4")
    screen = tmux.wait("console", lambda t: run_dir.name in t and "interrupted" in t, "the run listed as interrupted")
    assert "running" not in screen, screen


def test_detach_json_returns_while_training_and_wait_after_stop(tmp_path, leftovers):
    work = workdir(tmp_path, epochs=100)
    done = trainconsole(work, "run", "--detach", "--json", "-c", "settings.toml")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    facts = json.loads(lines[0])
    assert set(facts) == {"name", "run_dir", "pid"}, facts
    run_dir, pid = Path(facts["run_dir"]), facts["pid"]
    leftovers.append(run_dir)
    assert run_dir.parent == work / "runs" and facts["name"] == run_dir.name
    assert not exited(pid) and not of_type(read_events(run_dir), "RunFinished")  # returned with the run on its way
    wait_until(lambda: training(run_dir), "the detached run to train")

    stopped = trainconsole(work, "stop", str(run_dir))
    assert stopped.returncode == 0, stopped.stderr
    waited = trainconsole(work, "wait", str(run_dir))
    assert waited.returncode == 130, waited
    events = read_events(run_dir)
    assert (events[-1]["type"], events[-1]["status"]) == ("RunFinished", "stopped"), events[-1]
    assert of_type(events, "CommandReceived")[0]["command"] == "stop"
    wait_until(lambda: exited(pid), "the detached run's process to exit", timeout=60)  # wait returns at the record


def test_detach_with_bad_settings_starts_nothing(tmp_path):
    (tmp_path / "settings.toml").write_text(f'[run]\nruns_dir = "{tmp_path / "runs"}"\n[training]\nepochs = "many"\n')
    done = trainconsole(tmp_path, "run", "--detach", "-c", "settings.toml")
    assert done.returncode == 2, done
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "training.epochs" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()
    started = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(tmp_path).encode() in (proc / "cmdline").read_bytes():
                started.append(proc.name)
    assert not started, started
