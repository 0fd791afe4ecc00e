"""`trainconsole export-script`: the script, run with `python`, gives the engine's epoch-1 metrics (training.accel off).

Each case trains one epoch with the real CLI, exports the run folder, runs the script from another folder and
compares its history.json with the run's metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.mnist_files import learnable_digits, write_raw

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5  # README, "Exporting a run as a script"
REPO = Path(__file__).resolve().parents[2]
PLAIN = """
[run]
seed = 3
[device]
device = "cpu"
threads = 1
[training]
epochs = 1
accel = "off"
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def trainconsole(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "trainconsole"
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_env())


def run_and_export(tmp_path: Path, settings: str, *allow: str) -> tuple[dict, dict, Path, Path]:
    """(the run's epoch 1, the script's history, the run folder, the script's folder)."""
    (tmp_path / "settings.toml").write_text(settings)
    ran = trainconsole(tmp_path, "run", "-c", "settings.toml")
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    exported = trainconsole(tmp_path, "export-script", str(run_dir), *allow)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == str(run_dir / "train.py")
    script = run_dir / "train.py"
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "--config", str(REPO / "pyproject.toml"), str(script)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    assert "trainconsole" not in "".join(line for line in script.read_text().splitlines() if "import" in line)
    work = tmp_path / "script"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=600, env=_env()
    )
    assert done.returncode == 0, done.stderr
    assert "Epoch [1/1] | LR: " in done.stdout and "best model saved" in done.stdout
    engine = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    return engine, json.loads((work / "history.json").read_text()), run_dir, work


def assert_same_epoch(engine: dict, history: dict) -> float:
    worst = max(abs(engine[k] - history[k][0]) for k in ("train_loss", "val_loss", "train_acc", "val_acc"))
    assert worst <= TOLERANCE, (engine, history)
    return worst


def test_digits_mlp_matches_and_best_pth_goes_both_ways(tmp_path):
    engine, history, run_dir, work = run_and_export(tmp_path, PLAIN)
    assert_same_epoch(engine, history)
    assert len((run_dir / "train.py").read_text().splitlines()) < 200
    ours = torch.load(run_dir / "checkpoints" / "best.pth", weights_only=True)
    theirs = torch.load(work / "best.pth", weights_only=True)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    # the script's best.pth, with the preprocessing saved beside it, evaluates in trainconsole to its own val_loss
    ev = trainconsole(tmp_path, "eval", str(work / "best.pth"), "-c", "settings.toml", "--json")
    assert ev.returncode == 0, ev.stderr
    assert abs(json.loads(ev.stdout)["loss"] - history["val_loss"][0]) <= TOLERANCE


def test_mnist_format_cnn_matches(tmp_path):
    write_raw(tmp_path / "data" / "MNIST" / "raw", learnable_digits(160, 0), learnable_digits(40, 1))
    settings = PLAIN + f"""
[data]
dataset = "mnist"
root = "{tmp_path / 'data'}"
batch_size = 32
[model]
name = "cnn"
channels = [4, 8]
"""
    engine, history, _, _ = run_and_export(tmp_path, settings)
    assert_same_epoch(engine, history)


def test_csv_mlp_matches(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(150, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    rows = ["a;b;c;d;label"] + [";".join(f"{v:.3f}".replace(".", ",") for v in r) + f";{k}" for r, k in zip(x, y)]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    settings = PLAIN + f"""
[data]
dataset = "csv"
path = "{tmp_path / 'table.csv'}"
batch_size = 16
[model]
hidden = [16]
"""
    engine, history, _, _ = run_and_export(tmp_path, settings)
    assert_same_epoch(engine, history)


def test_a_user_model_is_imported_and_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the user's signing key (engine.io.signing)
    (tmp_path / "mymodels.py").write_text(
        "from torch import nn\n\n\n"
        "class Tiny(nn.Sequential):\n"
        "    def __init__(self, in_features, num_classes, width=12):\n"
        "        super().__init__(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), nn.Dropout(0.2),\n"
        "                         nn.Linear(width, num_classes))\n"
    )
    settings = PLAIN + '[model]\nname = "mymodels:Tiny"\noptions = {width = 10}\n'
    (tmp_path / "settings.toml").write_text(settings)
    assert trainconsole(tmp_path, "run", "-c", "settings.toml").returncode == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-user"))  # a run folder not signed as theirs
    refused = trainconsole(tmp_path, "export-script", str(run_dir))
    assert refused.returncode == 2 and "--allow-import mymodels:Tiny" in refused.stderr
    assert not (run_dir / "train.py").exists()
    for p in (tmp_path / "runs",):
        import shutil

        shutil.rmtree(p)
    engine, history, _, _ = run_and_export(tmp_path, settings, "--allow-import", "mymodels:Tiny")
    assert_same_epoch(engine, history)


def test_a_setting_it_cannot_write_is_refused_in_one_line(tmp_path):
    (tmp_path / "settings.toml").write_text(PLAIN + "[data]\naugment = true\n")
    refused = trainconsole(tmp_path, "export-script", "-c", "settings.toml", "-o", "train.py")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "trainconsole: error: cannot export data.augment = true: the script does not reproduce it"
    ]
    assert not (tmp_path / "train.py").exists()
    (tmp_path / "settings.toml").write_text(PLAIN)
    (tmp_path / "target").write_text("keep")
    (tmp_path / "train.py").symlink_to(tmp_path / "target")
    linked = trainconsole(tmp_path, "export-script", "-c", "settings.toml", "-o", "train.py")
    assert linked.returncode == 2 and (tmp_path / "target").read_text() == "keep"
