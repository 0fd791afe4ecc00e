"""The run's decisions as small units: each reads the state and answers."""

from __future__ import annotations

from engine.events import Diagnostic, EpochCompleted
from engine.training.policies import CheckpointRetention, EarlyStopping, NanStop, Stop, stop_policies, ThreadTrial
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
    assert EarlyStopping(3, "val_loss").after_epoch(state, epoch(7)) is None
    state.bad_epochs = 3
    decision = EarlyStopping(3, "val_loss").after_epoch(state, epoch(7))
    assert decision.status == "early_stopped" and "best 0.2500 at epoch 4" in decision.reason
    assert EarlyStopping(0, "val_loss").after_epoch(state, epoch(7)) is None  # patience 0: off


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


def run_trial(step_ms: dict[int, float]) -> tuple[ThreadTrial, list[int]]:
    """Feed a trial steps that take `step_ms[threads]`; the thread counts it used, step by step."""
    trial, used = ThreadTrial((1, 2)), []
    threads = trial.current
    while trial.chosen is None:
        used.append(threads)
        switched = trial.record(step_ms[threads] / 1e3 + (0.05 if len(used) == 1 else 0.0))  # a slow first step
        threads = switched or threads
    return trial, used


def test_the_thread_trial_alternates_blocks_and_keeps_the_faster_count():
    trial, used = run_trial({1: 1.2, 2: 0.9})
    assert trial.chosen == 2 and "1 thread 1.20 ms, 2 threads 0.90 ms" == trial.describe()
    w, b = ThreadTrial.WARMUP, ThreadTrial.BLOCK
    assert used[:w] == [1] * w and used[w : w + b] == [1] * b and used[w + b : w + 2 * b] == [2] * b
    assert len(used) == w + 2 * b * ThreadTrial.ROUNDS


def test_the_thread_trial_keeps_one_thread_unless_more_are_clearly_faster():
    assert run_trial({1: 1.0, 2: 0.99})[0].chosen == 1  # 1 % faster is not worth a core another process may take
    assert run_trial({1: 0.14, 2: 5.8})[0].chosen == 1  # a tiny model: waking a second thread costs more than it does
