"""Chapter 8.3's per-epoch diagnostic and 8.1's overfitting onset."""

from __future__ import annotations

import math

import pytest

from engine.settings.config import DiagnosticsSettings
from engine.training.diagnostics import diagnose, overfitting_onset

NAN, INF = float("nan"), float("inf")


def test_ok_carries_the_gaps():
    d = diagnose(3, 0.40, 0.50, 0.90, 0.85)
    assert d.status == "ok" and d.label == "OK"
    assert d.evidence["loss_gap"] == pytest.approx(0.10) and d.evidence["acc_gap"] == pytest.approx(0.05)
    assert d.evidence["train_loss"] == 0.40 and d.evidence["val_loss"] == 0.50


def test_overfitting_by_loss_gap():
    d = diagnose(5, 0.10, 0.70, 0.95, 0.94)
    assert d.status == "overfitting" and d.label == "OVERFITTING"
    assert d.evidence["loss_gap"] == pytest.approx(0.60)
    assert "+0.6000 > 0.5" in d.message and "accuracy" not in d.message


def test_overfitting_by_accuracy_gap():
    d = diagnose(5, 0.30, 0.40, 0.99, 0.80)
    assert d.status == "overfitting"
    assert d.evidence["acc_gap"] == pytest.approx(0.19)
    assert "accuracy gap" in d.message and "loss gap" not in d.message


def test_thresholds_are_strict_inequalities():
    assert diagnose(5, 0.25, 0.75, 0.5, 0.5).status == "ok"  # gap exactly 0.5
    rules = DiagnosticsSettings(overfit_acc_gap=0.125)
    assert diagnose(5, 0.5, 0.5, 0.75, 0.625, rules).status == "ok"
    assert diagnose(5, 0.5, 0.5, 0.75, 0.62, rules).status == "overfitting"


def test_underfitting_only_after_the_epoch_threshold():
    assert diagnose(20, 1.5, 1.6, 0.3, 0.3).status == "ok"
    d = diagnose(21, 1.5, 1.6, 0.3, 0.3)
    assert d.status == "underfitting" and d.label == "UNDERFITTING"
    assert d.evidence["train_loss"] == 1.5 and d.evidence["epoch"] == 21
    assert "1.5000 > 1.0" in d.message
    assert diagnose(30, 1.0, 1.1, 0.3, 0.3).status == "ok", "train loss must exceed the threshold"


def test_overfitting_wins_over_underfitting():
    assert diagnose(30, 1.5, 2.5, 0.3, 0.3).status == "overfitting"


@pytest.mark.parametrize(
    "train_loss, val_loss",
    [(0.2, NAN), (NAN, 0.2), (NAN, NAN), (0.2, INF), (-INF, 0.3)],
)
def test_nan_and_inf_are_checked_first(train_loss, val_loss):
    d = diagnose(25, train_loss, val_loss, 1.0, 0.1)  # a huge accuracy gap and a late epoch as well
    assert d.status == "nan" and d.label == "NaN"
    assert "epoch 25" in d.message
    assert set(d.evidence) == {"train_loss", "val_loss"}
    bad = [v for v in d.evidence.values() if not math.isfinite(v)]
    assert bad, "the evidence shows the bad number"


def test_thresholds_are_configurable():
    rules = DiagnosticsSettings(overfit_loss_gap=0.05, overfit_acc_gap=0.5, underfit_loss=0.2, underfit_after=2)
    assert diagnose(1, 0.4, 0.5, 0.9, 0.9, rules).status == "overfitting"
    assert diagnose(3, 0.4, 0.42, 0.9, 0.9, rules).status == "underfitting"
    assert diagnose(2, 0.4, 0.42, 0.9, 0.9, rules).status == "ok"
    loose = DiagnosticsSettings(overfit_loss_gap=5.0, overfit_acc_gap=1.0)
    assert diagnose(5, 0.1, 3.0, 1.0, 0.2, loose).status == "ok"


def _curve(n_down: int, n_up: int, low: float = 0.5, step: float = 0.1) -> list[float]:
    down = [low + step * (n_down - 1 - i) for i in range(n_down)]
    up = [low + step * (i + 1) for i in range(n_up)]
    return down + up


def test_onset_is_the_epoch_of_the_minimum():
    losses = _curve(6, 6)  # minimum 0.5 at epoch 6, last 1.1
    assert overfitting_onset(losses) == 6


def test_onset_needs_more_than_ten_epochs():
    losses = _curve(5, 5)  # 10 epochs, clearly rising
    assert len(losses) == 10 and overfitting_onset(losses) is None
    assert overfitting_onset(losses + [2.0]) == 5


def test_onset_needs_a_ten_percent_rise():
    flat = [1.0] * 8 + [0.5] + [0.54] * 3  # last is 8% above the minimum
    assert overfitting_onset(flat) is None
    assert overfitting_onset(flat[:-1] + [0.56]) == 9


def test_onset_rules_are_configurable():
    losses = [1.0, 0.5, 0.54]
    rules = DiagnosticsSettings(onset_margin=0.05, onset_min_epochs=2)
    assert overfitting_onset(losses, rules) == 2
    assert overfitting_onset(losses, DiagnosticsSettings(onset_margin=0.1, onset_min_epochs=2)) is None


def test_onset_ignores_nan():
    losses = _curve(6, 6)
    losses[2] = NAN
    assert overfitting_onset(losses) == 6
    assert overfitting_onset(losses[:-1] + [NAN]) is None
