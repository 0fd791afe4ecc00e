"""`trainconsole explain RUN [EPOCH]` as a user runs it, on a real tiny run (the real CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runs.records import read_metrics
from engine.training.advice import ADVICE, badge_summary

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# UNDERFITTING forced from epoch 3 (any train loss is above 0); OVERFITTING and NOT LEARNING kept out of its way
SETTINGS = """\
[run]
runs_dir = "runs"
name = "digits"
seed = 3

[data]
dataset = "digits"

[model]
hidden = [16]

[training]
epochs = 4

[device]
device = "cpu"

[diagnostics]
underfit_loss = 0.0
underfit_after = 2
overfit_after = 1000
chance_after = 0
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with settings.toml and the run `python -m engine run` made from it, in runs/digits."""
    tmp = tmp_path_factory.mktemp("explain")
    (tmp / "settings.toml").write_text(SETTINGS)
    done = cli("run", cwd=tmp)
    assert done.returncode == 0, done.stderr
    return tmp


def _statuses(run_dir: Path) -> list[tuple[int, str]]:
    return [(row["epoch"], row["diagnostic"]) for row in read_metrics(run_dir / "metrics.jsonl").items]


def test_without_an_epoch_the_last_epoch_is_explained_and_every_badge_listed(project):
    statuses = _statuses(project / "runs" / "digits")
    assert [n for n, _ in statuses] == [1, 2, 3, 4]
    assert all(status != "ok" for n, status in statuses if n >= 3), statuses  # the forced badge
    done = cli("explain", "digits", cwd=project)  # a name, found in settings.toml's run.runs_dir
    assert done.returncode == 0, done.stderr
    advice = ADVICE[statuses[-1][1]]
    out = done.stdout
    assert f"{advice.title} at epoch 4" in out
    assert "Evidence: " in out and "not recorded" not in out
    assert "What it usually means:" in out and "What to try:" in out
    assert out.strip().splitlines()[-1] == f"Badges: {badge_summary(statuses)}"
    assert all(len(line) <= 100 for line in out.splitlines())


def test_a_given_epoch_is_explained_with_its_own_evidence(project):
    run_dir = project / "runs" / "digits"
    done = cli("explain", str(run_dir), "2", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    recorded = [e["diagnostic"] for e in events if e["type"] == "EpochCompleted" and e["epoch"] == 2][-1]
    assert {k: data[k] for k in ("epoch", "status", "message", "evidence")} == {"epoch": 2, **recorded}
    assert data["meaning"] == ADVICE[recorded["status"]].meaning
    assert data["what_to_try"] == list(ADVICE[recorded["status"]].what_to_try)

    text = cli("explain", str(run_dir), "2", cwd=project)
    assert text.returncode == 0, text.stderr
    assert " ".join(recorded["message"].split()) in " ".join(text.stdout.split())  # wrapped, never cut
    assert all(name in text.stdout for name in recorded["evidence"])
    assert "Badges:" not in text.stdout  # only when no epoch is named


def test_json_without_an_epoch_explains_the_last_and_lists_the_badges(project):
    done = cli("explain", "digits", "--json", "--runs-dir", str(project / "runs"), cwd=project.parent)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["epoch"] == 4 and data["evidence_recorded"] is True
    statuses = _statuses(project / "runs" / "digits")
    assert data["badges"] == {
        status: [n for n, s in statuses if s == status] for status in dict.fromkeys(s for _, s in statuses if s != "ok")
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("explain", "no-such-run"), "no-such-run: no such run"),
        (("explain", "digits", "9"), "epoch 9: "),
        (("explain", "digits", "0"), "epoch 0: "),
        (("explain", "digits", "three"), "invalid int value"),
        (("explain",), "the following arguments are required: run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project, args, says):
    done = cli(*args, cwd=project)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_an_epoch_out_of_range_names_the_epochs_there_are(project):
    done = cli("explain", "digits", "9", cwd=project)
    assert done.stderr.strip().endswith("has epochs 1-4"), done.stderr


def test_an_old_run_without_recorded_evidence_is_explained_from_its_status(project, tmp_path):
    """A run whose events.jsonl has no epoch's diagnostic (older versions): metrics.jsonl's status is explained."""
    old = tmp_path / "old"
    shutil.copytree(project / "runs" / "digits", old)
    events = (old / "events.jsonl").read_text().splitlines()
    (old / "events.jsonl").write_text("".join(f"{e}\n" for e in events if '"EpochCompleted"' not in e))
    status = _statuses(old)[-1][1]
    done = cli("explain", str(old), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{ADVICE[status].title} at epoch 4" in done.stdout
    assert "Evidence: not recorded" in done.stdout
    data = json.loads(cli("explain", str(old), "--json", cwd=tmp_path).stdout)
    assert data["evidence_recorded"] is False and data["evidence"] == {} and data["status"] == status


def test_a_run_with_no_epoch_yet_says_so(project, tmp_path):
    young = tmp_path / "young"
    (young / "checkpoints").mkdir(parents=True)
    (young / "events.jsonl").write_text("")
    done = cli("explain", str(young), cwd=tmp_path)
    assert done.returncode == 2 and "no epoch has ended yet" in done.stderr, done.stderr
