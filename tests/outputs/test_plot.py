"""`trainconsole plot`: chapter 8.1's two panels as a PNG, one run or several overlaid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.outputs.curves import DPI, FIGSIZE, draw_curves
from engine.outputs.readers import read_run

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib import image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def fake_run(folder: Path, val_losses: list[float]) -> Path:
    """A run folder's metrics.jsonl: a train loss that falls, the given val losses."""
    folder.mkdir(parents=True)
    lines = []
    for i, val in enumerate(val_losses, 1):
        row = {"epoch": i, "train_loss": 1 / i, "val_loss": val, "train_acc": 1 - 0.5 / i, "val_acc": 1 - val / 3}
        lines.append(json.dumps({**row, "lr": 1e-3, "seconds": 1.0, "diagnostic": "ok", "is_best": False}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


OVERFITS = [1.0, 0.8, 0.6, 0.5, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]  # minimum at epoch 5, last 78 % above


def test_plot_of_one_run_saves_a_png_of_the_expected_size_with_the_onset(tmp_path, capsys):
    run = fake_run(tmp_path / "runs" / "a", OVERFITS)
    assert main(["plot", str(run)]) == 0
    out = run / "curves.png"
    assert capsys.readouterr().out.strip() == str(out)
    height, width = mpimg.imread(out).shape[:2]
    assert (width, height) == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)
    fig = draw_curves([read_run(run)])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["Train Loss", "Val Loss", "Overfitting onset (epoch 5)"]
    plt.close(fig)


def test_plot_of_two_runs_names_each_in_one_legend(tmp_path):
    a = fake_run(tmp_path / "runs" / "lr-1e-3", OVERFITS)
    b = fake_run(tmp_path / "runs" / "lr-1e-2", [1.0, 0.7, 0.5, 0.4])
    out = tmp_path / "both.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert mpimg.imread(out).shape[:2] == (FIGSIZE[1] * DPI, FIGSIZE[0] * DPI)
    fig = draw_curves([read_run(a), read_run(b)])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["lr-1e-3", "lr-1e-2"]
    plt.close(fig)


def test_plot_refuses_a_folder_that_is_not_a_run_in_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"trainconsole: error: {tmp_path}: not a run folder (no metrics.jsonl)\n"


def test_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch):
    import engine.outputs as outputs

    monkeypatch.setattr(outputs, "installed", lambda module: False)
    assert main(["plot", str(fake_run(tmp_path / "a", OVERFITS))]) == 2
    assert (
        capsys.readouterr().err
        == "trainconsole: error: trainconsole plot needs matplotlib: pip install 'trainconsole[plot]'\n"
    )


def test_a_regression_run_plots_r2_beside_its_loss(tmp_path):
    folder = tmp_path / "runs" / "diabetes"
    folder.mkdir(parents=True)
    rows = [{"epoch": i, "train_loss": 1 / i, "val_loss": 1.2 / i, "train_acc": None, "val_acc": None, "lr": 1e-3,
             "seconds": 1.0, "diagnostic": "ok", "is_best": False, "train_mae": 40.0, "val_mae": 45.0,
             "train_rmse": 50.0, "val_rmse": 55.0, "train_r2": 0.1 * i, "val_r2": 0.08 * i} for i in range(1, 5)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = draw_curves([read_run(folder)])
    right = fig.axes[1]
    assert right.get_title() == "R² curves" and right.get_ylabel() == "R²"
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["Train R²", "Val R²"]
    assert list(right.get_lines()[1].get_ydata()) == pytest.approx([0.08, 0.16, 0.24, 0.32])
    plt.close(fig)
    classification = draw_curves([read_run(fake_run(tmp_path / "runs" / "digits", OVERFITS))])
    assert classification.axes[1].get_title() == "Accuracy curves"
    plt.close(classification)
