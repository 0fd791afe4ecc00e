"""A run folder written before the engine-shape change (commit e306e46, `training.fused_step = true`) still lists,
evaluates and resumes with today's code: tests/data/run_before_issue_22 is that run, made by that commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "run_before_issue_22"

pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def old_run(tmp_path) -> Path:
    run = tmp_path / "runs" / "old-run"
    shutil.copytree(OLD_RUN, run)
    return run


def test_the_old_run_lists_with_its_checkpoints(old_run, tmp_path):
    done = cli("checkpoints", str(old_run.parent), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    run = next(r for r in (listed if isinstance(listed, list) else listed["runs"]) if r["name"] == "old-run")
    names = {Path(c["path"]).name for c in run["checkpoints"]}
    assert {"best.pth", "last.pth", "epoch_1.pth", "epoch_2.pth"} <= names


def test_the_old_best_checkpoint_evaluates_to_its_recorded_accuracy(old_run, tmp_path):
    recorded = [json.loads(line) for line in (old_run / "metrics.jsonl").read_text().splitlines()]
    done = cli("eval", str(old_run / "checkpoints" / "best.pth"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["accuracy"] == pytest.approx(recorded[-1]["val_acc"], abs=1e-6)


def test_the_old_run_resumes_with_its_renamed_setting_read_as_accel(old_run, tmp_path):
    last = old_run / "checkpoints" / "last.pth"
    done = cli("run", "--resume", str(last), "--set", "training.epochs=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "fused_step" in line]
    assert notes == [  # said once, in one line
        f'trainconsole: {last} settings: training.fused_step is now training.accel (read as accel = "auto")'
    ]
    assert "Epoch [3/3]" in done.stdout
    rows = [json.loads(line) for line in (old_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert 'accel = "auto"' in (old_run / "settings.toml").read_text()  # the record now names today's key
