"""`trainconsole eval` and `trainconsole checkpoints` as a user runs them (real CLI in a subprocess)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from engine.cli import main
from engine.settings.config import from_dict, load_settings
from engine.data.loaders import build_data
from engine.models.networks import build_model
from engine.runs.folder import read_jsonl
from engine.api import Run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster, and identically run after run, on one thread."""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("evalrun")
    settings = from_dict(
        {
            "run": {"runs_dir": str(tmp / "runs"), "name": "digits", "seed": 5},
            "data": {"dataset": "digits", "batch_size": 32},
            "model": {"hidden": [32], "dropout": 0.3},
            "training": {"epochs": 4, "monitor": "val_acc", "scheduler": "step", "step_size": 2},
            "device": {"device": "cpu"},
        }
    )
    trainer = Run(settings, lambda e: None, set_threads=False)
    assert trainer.run().status == "completed"
    return trainer.run_dir


def chapter_6_1_validation(model, val_loader, device):
    """The validation phase of chapter 6.1, copied as printed."""
    criterion = nn.CrossEntropyLoss()
    model.eval()
    val_loss_total = 0.0
    val_correct = 0
    val_total = 0
    with torch.no_grad():
        for batch_X, batch_y in val_loader:
            batch_X = batch_X.to(device)
            batch_y = batch_y.to(device)
            predictions = model(batch_X)
            loss = criterion(predictions, batch_y)
            val_loss_total += loss.item() * batch_X.size(0)
            _, predicted = predictions.max(1)
            val_total += batch_y.size(0)
            val_correct += predicted.eq(batch_y).sum().item()
    return val_loss_total / val_total, val_correct / val_total


def test_eval_of_best_reproduces_the_recorded_best_epoch(run_dir, tmp_path):
    done = cli("eval", str(run_dir / "checkpoints" / "best.pth"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    rows = list(read_jsonl(run_dir / "metrics.jsonl"))
    best = [r for r in rows if r["is_best"]][-1]
    assert result["accuracy"] == best["val_acc"]  # exactly
    assert result["loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    assert result["samples"] == 359 and len(result["confusion_matrix"]) == 10
    assert sum(map(sum, result["confusion_matrix"])) == 359
    confusion = torch.tensor(result["confusion_matrix"])
    for i, acc in enumerate(result["per_class_accuracy"]):
        assert acc == pytest.approx(float(confusion[i, i] / confusion[i].sum()))

    # chapter 6.1's own validation loop on the same model and data gives the same numbers
    settings = load_settings(run_dir / "settings.toml")
    data = build_data(settings.data, settings.run.seed, torch.device("cpu"), augment=False)
    model = build_model(settings.model, data.in_shape, data.num_classes)
    model.load_state_dict(torch.load(run_dir / "checkpoints" / "best.pth"))
    loss, acc = chapter_6_1_validation(model, data.val, torch.device("cpu"))
    assert acc == result["accuracy"]
    assert loss == pytest.approx(result["loss"], rel=1e-6)


def test_eval_of_a_run_folder_and_of_last_and_the_text_report(run_dir, tmp_path, capsys):
    assert main(["eval", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"].endswith("best.pth")
    last = cli("eval", str(run_dir / "checkpoints" / "last.pth"), cwd=tmp_path)
    assert last.returncode == 0, last.stderr
    final = list(read_jsonl(run_dir / "metrics.jsonl"))[-1]
    assert f"Accuracy   : {final['val_acc']:.2%}" in last.stdout and "Confusion matrix" in last.stdout
    lines = last.stdout.splitlines()
    matrix = lines[lines.index(next(line for line in lines if line.startswith("Confusion matrix"))) + 1 :][:11]
    assert matrix[0].split()[-1] == "acc" and len({len(line) for line in matrix}) == 1  # a header and 10 rows, aligned
    assert all(re.fullmatch(r"\d+\.\d%|-", row.split()[-1]) for row in matrix[1:])


def test_eval_on_another_device_than_the_run(run_dir, capsys):
    """A run trained on a GPU server in fp16 is evaluated on a laptop with --device cpu (in fp32: fp16 needs CUDA)."""
    settings = run_dir / "settings.toml"
    text = settings.read_text()
    assert 'device = "cpu"' in text and 'precision = "auto"' in text
    settings.write_text(
        text.replace('device = "cpu"', 'device = "cuda:7"').replace('precision = "auto"', 'precision = "fp16"')
    )
    try:
        assert main(["eval", str(run_dir), "--device", "cpu", "--json"]) == 0
    finally:
        settings.write_text(text)
    final = list(read_jsonl(run_dir / "metrics.jsonl"))
    assert json.loads(capsys.readouterr().out)["accuracy"] == max(row["val_acc"] for row in final)


@pytest.mark.parametrize(
    "case",
    ["truncated", "foreign", "malicious", "other-architecture", "test-split-of-digits", "best-as-resume", "bad-device"],
)
def test_bad_inputs_are_one_line_errors_with_exit_2(run_dir, tmp_path, case, monkeypatch, capsys):
    best = run_dir / "checkpoints" / "best.pth"
    target = tmp_path / "bad.pth"
    marker = tmp_path / "pwned"
    args: list[str] = ["eval", str(target)]
    if case == "truncated":
        data = (run_dir / "checkpoints" / "last.pth").read_bytes()
        target.write_bytes(data[: len(data) // 3])
    elif case == "foreign":
        target.write_text("epoch,loss\n1,0.5\n")
    elif case == "malicious":
        target.write_bytes(_malicious_bytes(marker))
    elif case == "other-architecture":
        (tmp_path / "other.toml").write_text('[data]\ndataset = "digits"\n[model]\nhidden = [48]\n')
        args = ["eval", str(best), "-c", str(tmp_path / "other.toml")]
    elif case == "bad-device":
        args = ["eval", str(best), "--device", "tpu"]
    elif case == "test-split-of-digits":
        args = ["eval", str(best), "--split", "test"]
    else:
        args = ["run", "--resume", str(best)]
    if case in ("truncated", "malicious"):  # the real process: nothing may be imported or created on the way
        done = cli(*args, cwd=tmp_path)
        code, stderr = done.returncode, done.stderr
    else:
        monkeypatch.chdir(tmp_path)
        code = main(args)
        stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainconsole: error:"), stderr
    assert not marker.exists()
    expected = {
        "truncated": "truncated",
        "foreign": "not a PyTorch checkpoint",
        "malicious": "refused",
        "other-architecture": "fc1.weight (32, 64) vs (48, 64)",
        "test-split-of-digits": "no test split",
        "best-as-resume": "not a full checkpoint",
        "bad-device": "--device tpu: allowed: auto, cpu",
    }[case]
    assert expected in lines[0]


class _TouchOnLoad:
    """Pickles as a call of pathlib.Path.touch, a function any process can import: only weights_only stops it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"model_state_dict": {}, "p": _TouchOnLoad(marker)}, buf)
    return buf.getvalue()


def test_checkpoints_lists_runs_with_status_and_best(run_dir, tmp_path, capsys):
    done = cli("checkpoints", str(run_dir.parent), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert (run["name"], run["status"], run["epochs"], run["monitor"]) == ("digits", "completed", 4, "val_acc")
    kinds = {c["kind"]: c for c in run["checkpoints"]}
    assert kinds["best"]["is_best"] and kinds["best"]["epoch"] == run["best_epoch"]
    assert kinds["best"]["monitor_value"] == kinds["best"]["val_acc"]
    assert kinds["last"]["epoch"] == 4 and kinds["last"]["size"] > 0
    assert main(["checkpoints", str(run_dir.parent)]) == 0
    text = capsys.readouterr().out
    assert "[completed]" in text and "*best" in text and "last.pth" in text
