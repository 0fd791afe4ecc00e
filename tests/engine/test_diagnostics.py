"""The per-epoch diagnostic on synthetic curves: the chapter's 8.3 rules as written, and the default rules judged
against the constant predictor of the run's own data; 8.1's overfitting onset."""

from __future__ import annotations

import math

import pytest

from engine.data.loaders import LabelCounts
from engine.events import Diagnostic
from engine.settings.config import DiagnosticsSettings
from engine.training.baselines import Baseline, constant_baseline
from engine.training.diagnostics import EpochScores, diagnose, overfitting_onset

NAN, INF = float("nan"), float("inf")
TEN = Baseline(math.log(10), 0.1, 10)  # ten balanced classes: the chapter's MNIST
CHAPTER = DiagnosticsSettings(rules="chapter")


def scores(epoch, train_loss, val_loss, train_acc=0.9, val_acc=0.9, past_train=(), past_val=(), val_samples=1000):
    return EpochScores(epoch, train_loss, val_loss, train_acc, val_acc, tuple(past_train), tuple(past_val), val_samples)


def curve(train, val, accs=None, baseline=TEN, rules=None) -> list[Diagnostic]:
    """The diagnostic of every epoch of a run whose losses are `train` and `val`."""
    accs = accs or [(0.9, 0.9)] * len(train)
    return [
        diagnose(scores(i + 1, train[i], val[i], *accs[i], train[:i], val[:i]), rules, baseline)
        for i in range(len(train))
    ]


# -- the constant predictor ----------------------------------------------------------------------------------------
def test_the_constant_predictor_of_balanced_and_imbalanced_labels():
    balanced = constant_baseline(LabelCounts([100] * 10, [20] * 10))
    assert balanced.loss == pytest.approx(math.log(10)) and balanced.accuracy == pytest.approx(0.1)
    imbalanced = constant_baseline(LabelCounts([880, 120], [88, 12]))
    assert imbalanced.loss == pytest.approx(-(0.88 * math.log(0.88) + 0.12 * math.log(0.12)))
    assert imbalanced.accuracy == pytest.approx(0.88)
    unseen = constant_baseline(LabelCounts([10, 0], [5, 5]))  # a class training never shows: still finite
    assert math.isfinite(unseen.loss) and constant_baseline(None) is None


# -- the chapter's rules, as written ---------------------------------------------------------------------------------
def test_the_chapter_rules_are_exactly_its_8_3():
    assert diagnose(scores(5, 0.25, 0.75, 0.5, 0.5), CHAPTER).status == "ok"  # gap exactly 0.5: strict
    assert diagnose(scores(1, 0.10, 0.70), CHAPTER).status == "overfitting"  # from epoch 1, no extra guard
    assert diagnose(scores(2, 0.3, 0.4, 0.99, 0.85, val_samples=10), CHAPTER).status == "overfitting"
    assert diagnose(scores(21, 1.5, 1.6, 0.3, 0.3), CHAPTER).status == "ok"  # the chapter's epoch counts from 0
    assert diagnose(scores(22, 1.5, 1.6, 0.3, 0.3), CHAPTER).status == "underfitting"
    assert diagnose(scores(3, 2.3, 2.3, 0.1, 0.1), CHAPTER).status == "ok"  # no NOT LEARNING in the chapter
    assert diagnose(scores(3, 1e17, 2.3, 0.1, 0.1), CHAPTER).status == "ok"  # nor DIVERGING


@pytest.mark.parametrize("rules", [None, CHAPTER])
@pytest.mark.parametrize("train_loss, val_loss", [(NAN, 0.5), (0.5, NAN), (INF, 0.5), (0.1, -INF)])
def test_nan_and_inf_come_first_under_both_rules(rules, train_loss, val_loss):
    d = diagnose(scores(30, train_loss, val_loss, 0.99, 0.1), rules, TEN)
    assert d.status == "nan" and "at epoch 30" in d.message


# -- diverging -------------------------------------------------------------------------------------------------------
def test_a_loss_far_above_the_constant_predictors_is_diverging_at_once():
    d = diagnose(scores(1, 1.9e17, 2.3, 0.1, 0.1), None, TEN)
    assert d.status == "diverging" and d.evidence["constant_loss"] == pytest.approx(math.log(10))
    assert "1.9e+17" in d.message


def test_a_loss_far_above_the_first_epochs_is_diverging_without_a_baseline():
    assert [d.status for d in curve([0.5, 0.4, 1.6], [0.5, 0.4, 1.6], baseline=None)][-1] == "diverging"


def test_a_loss_rising_epochs_in_a_row_is_diverging():
    statuses = [d.status for d in curve([1.0, 0.8, 0.9, 1.0, 1.1], [1.0, 0.8, 0.9, 1.0, 1.1])]
    assert statuses[:4] == ["ok"] * 4 and statuses[4] == "diverging"


def test_a_fresh_models_loss_on_imbalanced_labels_is_where_training_starts_not_a_blow_up():
    five = Baseline(0.199, 0.95, 2)  # 5 % positives: the priors' loss is far below a fresh model's ln 2
    assert diagnose(scores(1, 0.69, 0.65, 0.5, 0.9), None, five).status == "ok"
    d = diagnose(scores(1, 1.2, 0.65, 0.5, 0.9), None, five)  # above 1.5 x ln 2
    assert d.status == "diverging" and "a fresh model's 0.6931 (ln 2 classes)" in d.message


def test_a_val_loss_that_jumps_far_above_at_once_is_diverging_but_one_that_climbs_is_not():
    d = diagnose(scores(1, 0.8, 27.7, 0.6, 0.3), None, TEN)  # the weights blew up at the end of epoch 1
    assert d.status == "diverging" and d.message.startswith("val loss 27.7") and d.evidence["val_loss"] == 27.7
    train = [2.2 - 0.1 * i for i in range(20)]  # learning the training labels by heart
    val = [2.31 + 0.1 * i for i in range(20)]  # 4.2 in the end: 1.8 x ln 10, reached slowly
    assert {d.status for d in curve(train, val, [(0.5, 0.1)] * 20)[4:]} == {"not_learning"}


def test_a_run_that_blew_up_stays_diverging_while_it_has_not_recovered():
    train = [17.5, 9.6] + [2.33] * 10  # blew up, then its network died: the constant predictor's loss
    val = [2.7, 2.38] + [2.32] * 10
    found = curve(train, val, [(0.1, 0.1)] * 12)
    assert {d.status for d in found} == {"diverging"}
    assert "blew up at epoch 1" in found[-1].message and "has not recovered" in found[-1].message
    assert found[-1].evidence["blow_up_epoch"] == 1


def test_a_run_that_blew_up_and_learned_is_diverging_for_a_few_epochs_then_judged_again():
    from engine.training.diagnostics import JUMP_EPOCHS, UNSTABLE_EPOCHS

    train = [1.0, 0.5, 9.0] + [0.3 * 0.95 ** i for i in range(12)]  # epoch 3 blew up, then it learned again
    val = [0.9, 0.5, 1.2] + [0.3 * 0.95 ** i for i in range(12)]
    found = curve(train, val)
    assert [d.status for d in found[:3]] == ["ok", "ok", "diverging"]
    unstable = found[3:3 + UNSTABLE_EPOCHS]
    assert {d.status for d in unstable} == {"diverging"} and "the run is unstable" in unstable[0].message
    # the blow-up more than doubled the loss too: a swing, judged for JUMP_EPOCHS from its epoch
    swinging = found[3 + UNSTABLE_EPOCHS:2 + JUMP_EPOCHS]
    assert swinging and all(d.status == "diverging" and "at epoch 3" in d.message and "swings" in d.message
                            for d in swinging)
    assert {d.status for d in found[max(3 + UNSTABLE_EPOCHS, 2 + JUMP_EPOCHS):]} == {"ok"}


def test_a_loss_rising_epochs_in_a_row_by_a_sliver_of_the_constants_is_no_divergence():
    from engine.training.diagnostics import RISE_FLOOR

    train = [0.9, 0.5, 0.2, 0.0414, 0.0432, 0.0507, 0.0543]  # held-out wine, seed 6: up 0.013, 1 % of ln 10
    assert {d.status for d in curve(train, [t + 0.03 for t in train])} == {"ok"}
    steep = train[:4] + [0.0414 + RISE_FLOOR * math.log(10) * f for f in (0.4, 0.8, 1.2)]
    assert curve(steep, [t + 0.03 for t in steep])[-1].status == "diverging"


def test_a_loss_that_more_than_doubles_in_one_epoch_swings_for_a_few_epochs():
    from engine.training.diagnostics import JUMP_EPOCHS

    three = Baseline(1.1115, 0.233, 3)  # iris, SGD lr 1 momentum 0.9: never past the blow-up bar, never settles
    train = [0.82, 0.62, 0.17, 0.16, 0.144, 0.14, 0.13, 0.12, 0.11, 0.10, 0.09, 0.08]
    val = [0.40, 0.30, 0.152, 0.1385, 0.2864, 0.20, 0.19, 0.18, 0.17, 0.16, 0.15, 0.14]  # doubled at epoch 5
    found = curve(train, val, [(0.95, 0.93)] * 12, three, DiagnosticsSettings(min_val_samples=10))
    assert [d.status for d in found[:4]] == ["ok"] * 4
    swinging = found[4:4 + JUMP_EPOCHS]  # the jump's epoch and the next ones, JUMP_EPOCHS in all
    assert {d.status for d in swinging} == {"diverging"}, [d.message for d in found]
    assert swinging[0].evidence["jump_epoch"] == 5 and "val loss jumped 0.1385 -> 0.2864" in swinging[0].message
    assert "diverging" not in {d.status for d in found[4 + JUMP_EPOCHS:]}


def test_a_loss_near_zero_that_doubles_is_no_swing():
    train = [0.9, 0.3, 0.05, 0.01, 0.004, 0.0101, 0.003]  # a few thousandths of ln 10: noise
    assert {d.status for d in curve(train, [0.9, 0.3, 0.1, 0.09, 0.088, 0.087, 0.086])} == {"ok"}


def test_with_a_baseline_a_loss_above_epoch_1s_is_no_blow_up():
    train = [0.1, 0.08, 0.16, 0.07]  # twice epoch 1's, far below what a model that learned nothing scores
    assert {d.status for d in curve(train, [t + 0.01 for t in train])} == {"ok"}
    assert curve(train, [t + 0.01 for t in train], baseline=None)[2].status == "diverging"


def test_a_healthy_curve_with_noise_is_not_diverging():
    train = [2.0, 1.2, 0.9, 0.95, 0.7, 0.72, 0.6, 0.55]  # a bump, not a climb
    assert all(d.status == "ok" for d in curve(train, [t + 0.05 for t in train]))


# -- not learning ----------------------------------------------------------------------------------------------------
def test_a_val_loss_never_clearly_below_the_constants_is_not_learning_from_chance_after():
    train = [2.30, 2.28, 2.25, 2.2, 2.1, 1.9]  # memorising noise
    val = [2.31, 2.30, 2.32, 2.35, 2.40, 2.50]  # never below the constant predictor's (a 0.6 gap at epoch 6)
    statuses = [d.status for d in curve(train, val, [(0.2, 0.1)] * 6)]
    assert statuses[:4] == ["ok"] * 4 and statuses[4:] == ["not_learning"] * 2  # judged from epoch 5


def test_chance_wording_needs_the_majority_accuracy_and_the_constant_loss():
    d = curve([2.3] * 5, [2.3026] * 5, [(0.1, 0.1)] * 5)[-1]
    assert d.status == "not_learning" and d.message.startswith("at chance")
    d = curve([2.3] * 5, [2.3026] * 5, [(0.3, 0.3)] * 5)[-1]
    assert d.status == "not_learning" and not d.message.startswith("at chance")


def test_a_model_beating_the_constants_loss_is_learning_however_modest_its_accuracy():
    imbalanced = Baseline(0.367, 0.88, 2)  # 12 % positives
    accs = [(0.88, 0.88)] * 30  # never better than the majority class
    losses = [0.36, 0.33, 0.31, 0.30, 0.29] + [0.285] * 25  # as logistic regression would: 22 % below
    assert {d.status for d in curve(losses, [v + 0.005 for v in losses], accs, imbalanced)} == {"ok"}


def test_a_val_loss_still_falling_by_a_clear_step_is_not_yet_not_learning():
    five = Baseline(0.2, 0.95, 2)  # a small model on 5 % positives starts at ln 2 and falls slowly to the priors
    val = [0.56, 0.43, 0.34, 0.28, 0.25, 0.22, 0.20, 0.19, 0.19, 0.19]
    found = [d.status for d in curve([v + 0.01 for v in val], val, [(0.95, 0.95)] * 10, five)]
    assert found[4:8] == ["ok"] * 4  # falling by more than 1 % of the constant's loss an epoch
    assert found[8:] == ["not_learning"] * 2  # 0.19 is not 10 % below 0.2, and it stopped falling


def test_not_learning_can_be_switched_off():
    rules = DiagnosticsSettings(chance_after=0)
    assert {d.status for d in curve([2.3] * 8, [2.31] * 8, rules=rules)} == {"ok"}


# -- overfitting and underfitting ------------------------------------------------------------------------------------
def test_the_chapters_loss_gap_is_scaled_to_the_datas_constant_loss():
    two = Baseline(math.log(2), 0.5, 2)
    d = diagnose(scores(5, 0.05, 0.30), None, two)  # a 0.25 gap: much for two classes, little for ten
    assert d.status == "overfitting" and "x 0.30" in d.message
    assert d.evidence["loss_gap_bar"] == pytest.approx(0.5 * math.log(2) / math.log(10))
    assert diagnose(scores(5, 0.05, 0.30), None, TEN).status == "ok"


def test_the_onset_rule_finds_val_loss_rising_from_its_best_while_train_falls():
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1]
    val = [1.0, 0.7, 0.55, 0.58, 0.62, 0.64, 0.66]
    found = curve(train, val)
    assert [d.status for d in found[:3]] == ["ok"] * 3
    assert {d.status for d in found[3:]} == {"overfitting"}  # up 0.03 (5 %) as train fell 0.4 -> 0.3
    assert found[3].evidence["onset_epoch"] == 3 and "up from its best 0.5500 at epoch 3" in found[3].message


def test_the_onset_rule_needs_the_train_loss_still_falling_clearly():
    """A healthy run (imbalanced table, weight decay, held-out seed 6) whose train loss levelled off: its val loss
    wobbles 17 % above its best on noise. Once the train loss has fallen ONSET_TRAIN_FALL since the best, it
    counts."""
    from engine.training.diagnostics import ONSET_TRAIN_FALL

    two = Baseline(0.3967, 0.865, 2)
    train, val = [0.0685, 0.0632, 0.0600, 0.0545], [0.0808, 0.0779, 0.0748, 0.0878]  # best at epoch 3
    found = curve(train, val, [(0.98, 0.98)] * 4, two)
    assert found[3].status == "ok", found[3].message  # train fell 9 %: levelled off
    falling = train[:3] + [0.0600 * (1 - ONSET_TRAIN_FALL) - 0.001]
    found = curve(falling, val, [(0.98, 0.98)] * 4, two)
    assert found[3].status == "overfitting" and found[3].evidence["onset_epoch"] == 3


def test_the_onset_rule_on_small_losses_needs_a_rise_of_three_quarters_of_a_percent_of_the_constants():
    train = [0.5, 0.2, 0.1, 0.08, 0.06, 0.05]
    val = [0.5, 0.2, 0.1, 0.105, 0.116, 0.12]  # a twentieth of the constant's loss (ln 10)
    found = curve(train, val)
    assert found[4].status == "ok"  # 16 % up, but by 0.016: not more than 0.0075 x 2.3026
    assert found[5].status == "overfitting" and found[5].evidence["onset_epoch"] == 3  # up 0.02


def test_overfitting_is_not_judged_in_the_first_epochs_or_on_few_samples():
    assert diagnose(scores(2, 0.1, 0.9), None, TEN).status == "ok"
    d = diagnose(scores(5, 0.3, 0.4, 0.99, 0.80, val_samples=36), None, TEN)
    assert d.status == "ok" and "36 validation samples" in d.message


def test_underfitting_is_the_chapters_rule_scaled():
    after = DiagnosticsSettings().underfit_after  # 10 by default: the chapter's 20 found it late on the corpus
    past = ([2.0] * after, [1.6] * after)
    assert diagnose(scores(after + 1, 1.5, 1.55, 0.3, 0.3, *past), None, TEN).status == "underfitting"
    assert diagnose(scores(after, 1.5, 1.55, 0.3, 0.3, past[0][1:], past[1][1:]), None, TEN).status == "ok"
    assert diagnose(scores(21, 1.5, 1.55, 0.3, 0.3, [2.0] * 20, [1.6] * 20), None, TEN).status == "underfitting"
    two = Baseline(0.367, 0.88, 2)  # 12 % positives: 1.0 x ln 2 / ln 10 = 0.30
    assert diagnose(scores(30, 0.285, 0.29, 0.88, 0.88, [0.3] * 29, [0.3] * 29), None, two).status == "ok"


def test_diagnostics_thresholds_are_configurable():
    rules = DiagnosticsSettings(overfit_loss_gap=0.05, overfit_after=1)
    assert diagnose(scores(1, 0.40, 0.50), rules, TEN).status == "overfitting"


# -- chapter 8.1's onset ---------------------------------------------------------------------------------------------
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




def test_a_status_this_version_does_not_know_is_shown_as_written():
    from engine.events import Diagnostic

    assert Diagnostic("too_noisy", "x").label == "TOO NOISY"
