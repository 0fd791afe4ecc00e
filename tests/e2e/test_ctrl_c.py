"""Ctrl-C anywhere: the run folder ends unlocked and its run recorded as stopped.

The first Ctrl-C asks for a stop at the next batch boundary. When the main thread is held by a call that does
not come back (a model's forward stuck in a library call, a slow validation), the user presses Ctrl-C again:
the run is then recorded as stopped at once, its last.pth the last one saved, never left "interrupted" and
locked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs.status import run_status
from run_watch import locked, read_jsonl, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# A model whose forward blocks in a library call (time.sleep: a C call that PEP 475 resumes after a handled
# signal) once the file `hold` appears beside it: the test decides when the main thread gets held.
STUCK_MODEL = '''
import time
from pathlib import Path

from torch import nn

HOLD = Path(__file__).with_name("hold")


class Stuck(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))

    def forward(self, x):
        if HOLD.exists():
            HOLD.with_name("held").touch()
            time.sleep(3600)
        return self.net(x)
'''


def _start(tmp_path: Path, *sets: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = ["--set", f'run.runs_dir="{tmp_path / "runs"}"', "--set", "device.threads=1", "--set", "run.name=ctrlc"]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _press_ctrl_c_until_exit(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """Ctrl-C as a user presses it when nothing happens: again, every half second, until the process ends."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run never ended under repeated Ctrl-C"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
    return proc.returncode


def _assert_recorded_stopped(run_dir: Path) -> None:
    events = read_jsonl(run_dir / "events.jsonl")
    finals = [e for e in events if e["type"] in ("RunFinished", "RunFailed")]
    assert [e["type"] for e in finals] == ["RunFinished"], finals
    assert finals[0]["status"] == "stopped", finals[0]
    assert not locked(run_dir)
    assert run_status(run_dir).status == "stopped"


def test_ctrl_c_while_a_library_call_holds_the_main_thread(tmp_path):
    (tmp_path / "stuckmodel.py").write_text(STUCK_MODEL)
    (tmp_path / "settings.toml").write_text('[model]\nname = "stuckmodel:Stuck"\n')
    proc = _start(tmp_path, "training.epochs=50")
    run_dir = tmp_path / "runs" / "ctrlc"
    try:
        wait_until(
            lambda: any(e["type"] == "EpochCompleted" for e in read_jsonl(run_dir / "events.jsonl")),
            "a first epoch",
            timeout=120,
        )
        (tmp_path / "hold").touch()
        wait_until(lambda: (tmp_path / "held").exists(), "the forward to hold the main thread", timeout=60)
        code = _press_ctrl_c_until_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, proc.stderr.read()
    assert "Traceback" not in proc.stderr.read()
    _assert_recorded_stopped(run_dir)


STUCK_DATA = """
import time
from pathlib import Path


def make():
    Path(__file__).with_name("held").touch()
    time.sleep(3600)
"""


def test_ctrl_c_while_set_up_holds_the_main_thread(tmp_path):
    """Ctrl-C while a user dataset function is still building the data: exit 130 in one line, nothing left locked."""
    (tmp_path / "stuckdata.py").write_text(STUCK_DATA)
    (tmp_path / "settings.toml").write_text('[data]\ndataset = "stuckdata:make"\n')
    proc = _start(tmp_path)
    try:
        wait_until(lambda: (tmp_path / "held").exists(), "the dataset function to hold the main thread", timeout=120)
        code = _press_ctrl_c_until_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert code == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    for run_dir in (tmp_path / "runs").glob("*"):  # a folder made before the stop is never left locked
        assert not locked(run_dir)
