"""The per-epoch diagnostic on real runs of the real CLI (issue 23): `python -m engine run --json` in a subprocess,
on scikit-learn tables written as CSV files in a temporary folder, seeded.

A run on shuffled labels is never OK after epoch 5; a healthy run on an imbalanced table (12 % positives) raises
no alarm in any epoch; a run at SGD lr 10 is DIVERGING at its first blown-up epoch, before any NaN.
benchmarks/diagnostics.py measures the same rules on a corpus of such runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def write_table(path: Path, x, y) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([f"x{i}" for i in range(x.shape[1])] + ["label"])
        out.writerows([*(f"{v:.6g}" for v in row), int(label)] for row, label in zip(x, y))
    return path


def run_json(folder: Path, table: Path, *settings: str) -> tuple[dict, list[dict], dict]:
    """`python -m engine run --json` on the table: its RunStarted, EpochCompleted and final events."""
    sets = ["data.dataset='csv'", f"data.path={str(table)!r}", "run.seed=0", "device.device='cpu'",
            "device.threads=1", f"run.runs_dir={str(folder / 'runs')!r}", *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "engine", "run", "--json", *[a for s in sets for a in ("--set", s)]],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events and events[0]["type"] == "RunStarted", done.stderr
    epochs = [e for e in events if e["type"] == "EpochCompleted"]
    return events[0], epochs, events[-1]


def statuses(epochs: list[dict]) -> list[tuple[int, str]]:
    return [(e["epoch"], e["diagnostic"]["status"]) for e in epochs]


def test_a_run_on_shuffled_labels_is_never_ok_after_epoch_5(tmp_path):
    bunch = datasets.load_breast_cancer()
    labels = np.random.default_rng(0).permutation(bunch.target)
    table = write_table(tmp_path / "cancer-shuffled.csv", bunch.data, labels)
    started, epochs, final = run_json(tmp_path, table, "training.epochs=10")
    assert final["status"] == "completed" and len(epochs) == 10
    late = [(n, status) for n, status in statuses(epochs) if n > 5]
    assert late and all(status == "not_learning" for _, status in late), statuses(epochs)
    assert min(e["val_loss"] for e in epochs) > 0.9 * started["baseline_loss"], "it learned nothing indeed"


def test_a_healthy_run_on_an_imbalanced_table_raises_no_alarm(tmp_path):
    x, y = datasets.make_classification(n_samples=2000, weights=[0.88], random_state=0)
    table = write_table(tmp_path / "imbalanced-12.csv", x, y)
    started, epochs, final = run_json(tmp_path, table, "training.epochs=15", "training.weight_decay=0.01")
    assert final["status"] == "completed" and len(epochs) == 15
    assert started["baseline_acc"] == pytest.approx(0.85, abs=0.05), "12 % positives: the majority is ~88 %"
    assert all(status == "ok" for _, status in statuses(epochs)), statuses(epochs)
    assert epochs[-1]["val_loss"] < 0.5 * started["baseline_loss"], "healthy: it learned far more than the priors"


def test_a_run_at_sgd_lr_10_is_diverging_at_its_first_blown_up_epoch(tmp_path):
    bunch = datasets.load_breast_cancer()
    table = write_table(tmp_path / "cancer.csv", bunch.data, bunch.target)
    started, epochs, _ = run_json(tmp_path, table, "training.epochs=5", "training.optimizer='sgd'",
                                  "training.lr=10.0", "training.momentum=0.9")
    losses = [float(e["train_loss"]) for e in epochs]  # a non-finite loss is written as the string "nan" or "inf"
    blown = [i for i, loss in enumerate(losses) if not loss <= started["baseline_loss"]]
    assert blown, f"the run never blew up: {losses}"
    first = epochs[blown[0]]
    assert math.isfinite(losses[blown[0]]), f"NaN came first: {losses}"
    assert first["diagnostic"]["status"] == "diverging", statuses(epochs)
    assert all(status != "ok" for _, status in statuses(epochs)[blown[0]:]), statuses(epochs)
