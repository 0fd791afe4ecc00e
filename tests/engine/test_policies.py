"""The run's decisions as small units: each reads the state and answers."""

from __future__ import annotations

from engine.events import Diagnostic, EpochCompleted
from engine.training.policies import CheckpointRetention, EarlyStopping, Improvement, NanStop, Stop, stop_policies
from engine.training.snapshot import RunState


def epoch(n: int, status: str = "ok") -> EpochCompleted:
    return EpochCompleted(
        n, 10, 0.5, 0.6, 0.8, 0.7, 1e-3, 1.0, 100.0, Diagnostic(status, f"{status} message"), False, None
    )


def test_nan_stop_answers_a_nan_epoch_unless_it_is_off():
    assert NanStop(True).after_epoch(RunState(), epoch(3, "nan")) == Stop("nan", "nan message")
    assert NanStop(True).after_epoch(RunState(), epoch(3, "overfitting")) is None
    assert NanStop(False).after_epoch(RunState(), epoch(3, "nan")) is None


def test_early_stopping_counts_the_epochs_without_improvement():
    state = RunState(epoch=7, best_epoch=4, best_value=0.25, bad_epochs=2)
    assert EarlyStopping(Improvement("val_loss", "min", patience=3)).after_epoch(state, epoch(7)) is None
    state.bad_epochs = 3
    decision = EarlyStopping(Improvement("val_loss", "min", patience=3)).after_epoch(state, epoch(7))
    assert decision.status == "early_stopped" and "best 0.2500 at epoch 4" in decision.reason
    off = EarlyStopping(Improvement("val_loss", "min", patience=0))
    assert off.after_epoch(state, epoch(7)) is None  # patience 0: off


def test_improvement_is_one_rule_for_best_and_patience():
    loss, acc = Improvement("val_loss", "min", min_delta=0.01, patience=2), Improvement("val_acc", "max")
    state = RunState(epoch=1)
    assert loss.record(state, 0.5, finite=True) and state.best_value == 0.5 and state.best_epoch == 1
    state.epoch = 2
    assert not loss.record(state, 0.495, finite=True)  # better, but not by more than min_delta
    assert state.bad_epochs == 1 and state.best_value == 0.5
    state.epoch = 3
    assert not loss.record(state, 0.1, finite=False)  # a non-finite epoch never becomes best
    assert state.bad_epochs == 2 and EarlyStopping(loss).after_epoch(state, epoch(3)).status == "early_stopped"
    state.epoch = 4
    assert loss.record(state, 0.4, finite=True) and state.bad_epochs == 0 and state.best_epoch == 4
    assert acc.improves(0.9, 0.8) and not acc.improves(0.8, 0.9) and not acc.improves(float("nan"), None)


def test_the_nan_stop_is_asked_before_early_stopping(tiny_settings):
    policies = stop_policies(tiny_settings("training.patience=1"))
    state = RunState(epoch=2, best_epoch=1, best_value=0.1, bad_epochs=1)
    decisions = [p.after_epoch(state, epoch(2, "nan")) for p in policies]
    assert decisions[0].status == "nan" and decisions[1].status == "early_stopped"


def test_retention_keeps_every_nth_epoch_and_the_newest_few():
    keep = CheckpointRetention(every=2, keep=2)
    assert [e for e in range(1, 8) if keep.keeps(e)] == [2, 4, 6]
    assert keep.to_remove([2, 4, 6]) == [2]
    assert keep.to_remove([6, 2]) == []
    assert not CheckpointRetention(every=0, keep=3).keeps(4)
