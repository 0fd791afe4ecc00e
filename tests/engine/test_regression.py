"""Regression as a task (issue 24): a numeric target trains as one, is reported in its own units, and its epoch
records, CSV, TensorBoard tags and eval keep their schema; classification records keep theirs."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
import torch

from engine.api import Run
from engine.data.loaders import _split_indices
from engine.events import EPOCH_RECORD_FIELDS, REGRESSION_FIELDS, Diagnostic, EpochCompleted, event_from_dict
from engine.runs.records import epoch_record, event_record, read_metrics
from engine.settings.config import SettingsError, from_dict
from engine.training.trainer import Trainer

DIABETES = """
    import torch
    from sklearn.datasets import load_diabetes
    from torch.utils.data import TensorDataset

    def make(seed=0):
        d = load_diabetes()
        return TensorDataset(torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target, dtype=torch.float32))
"""


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster, and identically run after run, on one thread."""


@pytest.fixture
def diabetes_factory(tmp_path, monkeypatch) -> str:
    (tmp_path / "diabetes_source.py").write_text(textwrap.dedent(DIABETES))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "diabetes_source:make"


def settings_for(tmp_path: Path, data: dict, training: dict | None = None, model: dict | None = None):
    return from_dict({
        "run": {"runs_dir": str(tmp_path / "runs"), "name": "reg", "seed": 0},
        "data": {"batch_size": 32, **data},
        "model": {"hidden": [], "dropout": 0.0, **(model or {})},
        "training": {"epochs": 60, "lr": 0.02, **(training or {})},
        "diagnostics": {"probes": False},
        "device": {"device": "cpu"},
    })


def ridge_r2(val_fraction: float, seed: int) -> float:
    """scikit-learn's Ridge on the split the engine makes, features standardised on its training rows."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    d = load_diabetes()
    train, val = (i.numpy() for i in _split_indices(len(d.target), val_fraction, seed))
    scaler = StandardScaler().fit(d.data[train])
    model = Ridge().fit(scaler.transform(d.data[train]), d.target[train])
    return r2_score(d.target[val], model.predict(scaler.transform(d.data[val])))


def test_diabetes_trains_as_regression_within_ridge(tmp_path, diabetes_factory):
    events = []
    trainer = Trainer(settings_for(tmp_path, {"dataset": diabetes_factory}), events.append, set_threads=False)
    final = trainer.run()
    assert final.status == "completed", final
    assert trainer.data.task == "regression" and trainer.data.num_classes == 1
    assert "read as a regression target" in trainer.data.description
    epochs = [e for e in events if isinstance(e, EpochCompleted)]
    best = min(epochs, key=lambda e: e.val_loss)
    assert best.val_acc is None and best.train_acc is None
    assert best.val_r2 == pytest.approx(ridge_r2(0.2, 0), abs=0.05)
    assert 30 < best.val_mae < best.val_rmse < 80  # the target's units: diabetes progression, std ~77
    assert trainer.baseline.accuracy is None and trainer.baseline.loss == pytest.approx(1.0, abs=0.3)


def test_a_regression_cannot_monitor_accuracy(tmp_path, diabetes_factory):
    settings = settings_for(tmp_path, {"dataset": diabetes_factory}, {"epochs": 1, "monitor": "val_acc"})
    with pytest.raises(SettingsError, match="training.monitor = 'val_acc'.*regression.*val_loss"):
        Trainer(settings, [], set_threads=False).setup()
    with pytest.raises(SettingsError, match="model.task = 'regression'.*monitor val_loss"):
        from_dict({"model": {"task": "regression"}, "training": {"monitor": "val_acc"}})


def test_classification_forced_on_a_continuous_label_is_refused(tmp_path, diabetes_factory):
    """model.task = classification on diabetes: 214 classes, most in one or two rows (the issue's run)."""
    settings = settings_for(tmp_path, {"dataset": diabetes_factory}, {"epochs": 1}, {"task": "classification"})
    refused = r"214 classes, 152 of them in one or two rows.*set model.task = 'regression'"
    with pytest.raises(SettingsError, match=refused):
        Trainer(settings, [], set_threads=False).setup()


def diabetes_csv(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_a_csv_label_becomes_a_regression_target_and_its_files_say_so(tmp_path):
    csv_path = diabetes_csv(tmp_path / "diabetes.csv")
    data = {"dataset": "csv", "path": str(csv_path), "label_column": "target"}
    trainer = Run(settings_for(tmp_path, data, {"epochs": 3}), [], set_threads=False)
    assert trainer.run().status == "completed"
    assert trainer.data.task == "regression"
    records = read_metrics(trainer.run_dir / "metrics.jsonl")
    assert len(records.items) == 3 and not records.skipped
    assert set(records.items[0]) == {*EPOCH_RECORD_FIELDS, *REGRESSION_FIELDS}
    assert records.items[0]["val_acc"] is None and isinstance(records.items[0]["val_r2"], float)
    with open(trainer.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*EPOCH_RECORD_FIELDS, *REGRESSION_FIELDS] and len(rows) == 3
    assert float(rows[2]["val_mae"]) == pytest.approx(records.items[2]["val_mae"])


def test_a_csv_label_of_many_singleton_classes_is_refused(tmp_path):
    lines = ["x,name"] + [f"{k},person{k}" for k in range(80)]
    (tmp_path / "ids.csv").write_text("\n".join(lines) + "\n")
    data = {"dataset": "csv", "path": str(tmp_path / "ids.csv"), "label_column": "name"}
    with pytest.raises(SettingsError, match="80 classes, 80 of them in one or two rows.*model.task"):
        Trainer(settings_for(tmp_path, data, {"epochs": 1}), [], set_threads=False).setup()


def regression_epoch(**changes) -> EpochCompleted:
    values = dict(epoch=2, epochs=5, train_loss=0.5, val_loss=0.6, train_acc=None, val_acc=None, lr=0.01,
                  seconds=0.1, samples_per_s=100.0, diagnostic=Diagnostic("ok", "fine", {"loss_gap": 0.1}),
                  is_best=True, onset_epoch=None, train_mae=40.0, val_mae=45.5, train_rmse=50.0, val_rmse=55.0,
                  train_r2=0.5, val_r2=0.45)
    return EpochCompleted(**{**values, **changes})


def test_epoch_records_round_trip_with_their_schema():
    reg = regression_epoch()
    row = json.loads(json.dumps(reg.metrics()))
    assert list(row) == [*EPOCH_RECORD_FIELDS, *REGRESSION_FIELDS]
    assert epoch_record(row) == row
    assert event_record(json.loads(json.dumps(reg.to_dict()))) == reg
    assert event_from_dict(reg.to_dict()) == reg
    cls = regression_epoch(train_acc=0.9, val_acc=0.8, train_mae=None, val_mae=None, train_rmse=None,
                           val_rmse=None, train_r2=None, val_r2=None)
    assert list(cls.metrics()) == list(EPOCH_RECORD_FIELDS)  # a classification's record is as it always was
    assert epoch_record(cls.metrics()) == cls.metrics()
    bad = {**row, "val_r2": "high"}
    assert epoch_record(bad) is None


def test_old_run_folders_still_load():
    old = Path(__file__).resolve().parents[1] / "data" / "run_before_issue_22" / "metrics.jsonl"
    records = read_metrics(old)
    assert records.items and not records.skipped
    assert all(set(r) == set(EPOCH_RECORD_FIELDS) for r in records.items)


def test_huber_is_a_choice_and_cross_entropy_is_refused_for_regression(tmp_path, diabetes_factory):
    huber = settings_for(tmp_path, {"dataset": diabetes_factory}, {"epochs": 1, "loss": "huber"})
    trainer = Trainer(huber, [], set_threads=False)
    trainer.setup()
    assert trainer.criterion.kind == "huber"
    trainer.close()
    with pytest.raises(SettingsError, match="training.loss = 'cross_entropy'.*regression"):
        from_dict({"model": {"task": "regression"}, "training": {"loss": "cross_entropy"}})
    assert torch.isfinite(torch.tensor(trainer.baseline.loss))


def test_badges_of_a_regression_judge_against_the_mean_predictor_without_accuracy():
    from engine.training.baselines import Baseline
    from engine.training.diagnostics import EpochScores, diagnose

    mean = Baseline(1.0, None, 1, regression=True)
    flat = EpochScores(8, 1.0, 1.01, None, None, (1.0,) * 7, (1.01,) * 7, 100)
    stuck = diagnose(flat, None, mean)
    assert stuck.status == "not_learning" and "training mean" in stuck.message
    assert "val_acc" not in stuck.evidence and "acc_gap" not in stuck.evidence
    falling = tuple(1.0 - 0.07 * k for k in range(7))
    learning = diagnose(EpochScores(8, 0.45, 0.5, None, None, falling, falling, 100), None, mean)
    assert learning.status == "ok" and "accuracy" not in learning.message, learning
    assert mean.describe().startswith("mean predictor") and mean.scale == 1.0


def test_a_regressions_sums_give_its_scores_and_survive_a_mid_epoch_checkpoint():
    from engine.training.loop import Sums

    class OneProcess:
        def sums(self, *values):
            return [float(v) for v in values]

    cpu = torch.device("cpu")
    sums = Sums(cpu)
    sums.add(torch.tensor(2.0), torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, 1.0]))  # errors 1 and 1
    scores = sums.scores(OneProcess(), (10.0, 2.0))
    assert scores.accuracy is None and scores.seen == 2 and scores.loss == 2.0
    assert scores.mae == pytest.approx(2.0) and scores.rmse == pytest.approx(2.0)  # std 2: the target's units
    assert scores.r2 == pytest.approx(1 - 2 / 0.5)  # against the split's own mean
    partial = sums.reduced(OneProcess(), regression=True)
    again = Sums(cpu, partial["loss_sum"], partial["correct"], partial["seen"], partial["errors"])
    assert again.scores(OneProcess(), (10.0, 2.0)) == scores
