"""A regression run through the real CLI (issue 24): the epoch line's MAE, RMSE and R², eval's residual summary,
export-script's one-line refusal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TRAINCONSOLE_TABLE_CACHE": "off"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_regression_trains_evaluates_with_residuals_and_refuses_export(tmp_path):
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(tmp_path / "diabetes.csv", index=False)
    sets = ["data.dataset=csv", "data.path=diabetes.csv", "data.label_column=target", "model.hidden=[]",
            "model.dropout=0", "training.epochs=3", "training.lr=0.02", "device.device=cpu", "run.runs_dir=runs",
            "run.name=diabetes", "diagnostics.probes=false"]
    trained = cli("run", *(a for s in sets for a in ("--set", s)), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "label 'target' read as a regression target" in trained.stdout
    assert "Baseline   : mean predictor" in trained.stdout
    lines = [line for line in trained.stdout.splitlines() if line.startswith("Epoch [")]
    assert len(lines) == 3 and all(re.search(r"Val: [\d.]+ \(MAE [\d.]+, RMSE [\d.]+, R² -?[\d.]+\)", x) for x in lines)

    evaluated = cli("eval", "runs/diabetes", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    out = evaluated.stdout
    assert "Confusion" not in out and "Split      : val (88 samples)" in out
    r2 = float(re.search(r"R²         : (-?[\d.]+)", out).group(1))
    last_r2 = float(re.search(r"R² (-?[\d.]+)\) \| Gap", lines[-1]).group(1))
    assert r2 == pytest.approx(last_r2, abs=1e-3)  # best.pth is the last epoch here: loss falls for 3 epochs
    assert "Residuals (target - prediction), quantiles:" in out and "0.5:" in out
    assert len(re.findall(r"^  row +\d+  target ", out, flags=re.M)) == 5

    exported = cli("export-script", "runs/diabetes", cwd=tmp_path)
    assert exported.returncode != 0
    assert "cannot export a regression (model.task)" in exported.stderr
    assert len(exported.stderr.strip().splitlines()) == 1
