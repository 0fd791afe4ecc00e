"""Chapter 8.3's per-epoch diagnostic and 8.1's overfitting onset."""

from __future__ import annotations

import math

import pytest

from engine.settings.config import DiagnosticsSettings
from engine.data.loaders import LabelCounts
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
    assert diagnose(3, 0.4, 0.5, 0.9, 0.9, rules).status == "overfitting"
    assert diagnose(1, 0.4, 0.5, 0.9, 0.9, DiagnosticsSettings(overfit_loss_gap=0.05, overfit_after=1)).status == (
        "overfitting"
    )
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


# -- guards and NOT LEARNING (real data) ---------------------------------------------

BALANCED_10 = LabelCounts([100] * 10, [40] * 10)  # 400 validation samples


def test_no_overfitting_in_a_fresh_models_first_epochs():
    # a fresh resnet's first epoch: BatchNorm statistics not settled, val loss far above train loss
    for epoch in (1, 2):
        d = diagnose(epoch, 2.0, 4.0, 0.5, 0.3, None, BALANCED_10)
        assert d.status == "ok" and "overfitting judged from epoch 3" in d.message
    assert diagnose(3, 2.0, 4.0, 0.5, 0.3, None, BALANCED_10).status == "overfitting"


def test_overfitting_needs_the_stated_minimum_of_validation_samples():
    few = LabelCounts([70, 72], [18, 18])  # wine-sized: 36 validation samples
    d = diagnose(10, 0.05, 0.9, 1.0, 0.8, None, few)
    assert d.status == "ok"
    assert "36 validation samples < 100: overfitting not judged" in d.message and d.evidence["val_samples"] == 36
    enough = LabelCounts([300, 300], [50, 50])
    assert diagnose(10, 0.05, 0.9, 1.0, 0.8, None, enough).status == "overfitting"
    rules = DiagnosticsSettings(min_val_samples=30)
    assert diagnose(10, 0.05, 0.9, 1.0, 0.8, rules, few).status == "overfitting"


def test_not_learning_when_the_loss_stays_near_ln_of_the_classes():
    chance = math.log(10)
    d = diagnose(5, 2.25, 2.30, 0.12, 0.10, None, BALANCED_10)
    assert d.status == "not_learning" and d.label == "NOT LEARNING"
    assert d.evidence["chance_loss"] == pytest.approx(chance)
    assert f"chance loss {chance:.4f}" in d.message and "0.90 x" in d.message and "epoch 5" in d.message
    assert diagnose(4, 2.25, 2.30, 0.12, 0.10, None, BALANCED_10).status == "ok", "judged from epoch 5"
    assert diagnose(5, 1.9, 2.0, 0.5, 0.45, None, BALANCED_10).status == "ok", "below 0.9 x ln 10 it learns"
    assert diagnose(30, 2.25, 2.30, 0.12, 0.10).status == "underfitting", "without label counts: the chapter's rules"


def test_not_learning_when_val_accuracy_is_the_majority_share():
    # imbalanced: 90 % of one class; the loss is low (the prior is easy) but accuracy is the majority's
    counts = LabelCounts([900, 100], [180, 20])
    d = diagnose(6, 0.20, 0.23, 0.90, 0.90, None, counts)  # below 0.9 x the entropy 0.3251
    assert d.status == "not_learning"
    assert d.evidence["majority_share"] == pytest.approx(0.9)
    assert "val accuracy 90.0% < 91.0% (majority class 90.0%" in d.message
    assert diagnose(6, 0.10, 0.12, 0.97, 0.96, None, counts).status == "ok"


def test_not_learning_can_be_switched_off():
    assert diagnose(9, 2.25, 2.30, 0.12, 0.10, DiagnosticsSettings(chance_after=0), BALANCED_10).status == "ok"


def test_a_status_this_version_does_not_know_is_shown_as_written():
    from engine.events import Diagnostic

    assert Diagnostic("too_noisy", "x").label == "TOO NOISY"
