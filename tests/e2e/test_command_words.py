"""`trainconsole pause|resume|stop` against a run training in another thread, as a user types them (issue 25):
a pause of a paused run, or a resume of a running one, is one line and exit code 3 (EXIT_ALREADY); the stop's
reason names `trainconsole stop`; the lines name the run folder as given, normalised."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.api import Run
from engine.cli.exits import EXIT_ALREADY, EXIT_OK
from engine.events import EpochCompleted, RunFinished
from engine.training.control import RunControl
from settings_helpers import tiny_settings

pytestmark = pytest.mark.slow


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _wait(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_pause_twice_resume_twice_then_stop(tmp_path):
    settings = tiny_settings(tmp_path, "data.batch_size=2", "device.device='cpu'", "device.threads=1", epochs=400)
    events: list = []
    trainer = Run(settings, events.append, RunControl(), set_threads=False)
    trainer.setup()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        assert _wait(lambda: any(isinstance(e, EpochCompleted) for e in events))
        name = trainer.run_dir.name
        given = f"runs/./{name}/"  # the folder as a user may type it: every line shows runs/<name>
        first = _cli(tmp_path, "pause", given)
        assert (first.returncode, first.stdout.strip()) == (EXIT_OK, f"runs/{name}: pausing at the next batch boundary")
        again = _cli(tmp_path, "pause", given)
        assert again.returncode == EXIT_ALREADY and again.stdout == ""
        assert again.stderr.strip() == f"trainconsole: run runs/{name} is already paused"
        assert _cli(tmp_path, "resume", given).returncode == EXIT_OK
        running = _cli(tmp_path, "resume", given)
        assert running.returncode == EXIT_ALREADY
        assert running.stderr.strip() == f"trainconsole: run runs/{name} is already running"
        assert _cli(tmp_path, "stop", given).returncode == EXIT_OK
        thread.join(timeout=120)
        final = events[-1]
        assert isinstance(final, RunFinished) and final.status == "stopped"
        assert final.reason.startswith("stopped by trainconsole stop: "), final.reason
    finally:
        trainer.control.stop("test over")
        thread.join(timeout=120)
