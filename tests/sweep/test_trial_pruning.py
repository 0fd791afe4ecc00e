"""A trial's pruning between epochs: the user's request, a diagnosis, the pruner, in that order, each named."""

from __future__ import annotations

import dataclasses

import pytest

from engine.events import Diagnostic, EpochCompleted
from engine.runs.commands import CONTROL_DIR
from engine.settings.sweep import SweepSettings
from engine.sweep.trial import LinkedControl, TrialListener
from engine.training.control import RunControl


class FakeTrial:
    """What the listener asks of Optuna's trial: report, should_prune, set_user_attr."""

    number = 3

    def __init__(self, prune: bool = False) -> None:
        self.prune, self.reported, self.attrs = prune, {}, {}

    def report(self, value: float, step: int) -> None:
        self.reported[step] = value

    def should_prune(self) -> bool:
        return self.prune

    def set_user_attr(self, key, value) -> None:
        self.attrs[key] = value


def epoch(n: int, val_loss: float, status: str = "ok") -> EpochCompleted:
    fields = {f.name: 0.0 for f in dataclasses.fields(EpochCompleted) if f.name != "time"}
    fields.update(epoch=n, epochs=5, val_loss=val_loss, diagnostic=Diagnostic(status, ""), is_best=False,
                  onset_epoch=None)
    return EpochCompleted(**fields)


def hear(tmp_path, *epochs, trial=None, diagnosis=True, request=False):
    trial = trial or FakeTrial()
    (tmp_path / CONTROL_DIR).mkdir(exist_ok=True)
    if request:
        (tmp_path / CONTROL_DIR / "prune").touch()
    control = LinkedControl(RunControl())
    listener = TrialListener(trial, "val_loss", SweepSettings(prune_on_diagnosis=diagnosis), control, tmp_path,
                             lambda event: None)
    for e in epochs:
        listener.on_event(e)
    return listener, control, trial


def test_each_epoch_is_reported_and_a_healthy_trial_goes_on(tmp_path):
    listener, control, trial = hear(tmp_path, epoch(1, 0.9), epoch(2, 0.5))
    assert trial.reported == {1: 0.9, 2: 0.5} and trial.attrs["epochs"] == 2
    assert listener.pruned is None and not control.stop_requested


@pytest.mark.parametrize(("status", "reason"), [("diverging", "diagnosis:diverging"),
                                                ("not_learning", "diagnosis:not_learning")])
def test_a_diagnosis_prunes_at_once_unless_turned_off(tmp_path, status, reason):
    listener, control, _ = hear(tmp_path, epoch(1, 3.0, status))
    assert listener.pruned == (1, reason) and control.stop_requested and not control.sweep.stop_requested
    listener, control, _ = hear(tmp_path, epoch(1, 3.0, status), diagnosis=False)
    assert listener.pruned is None and not control.stop_requested


def test_a_loss_that_is_not_finite_is_pruned_as_nan_and_never_reported(tmp_path):
    listener, _, trial = hear(tmp_path, epoch(1, float("nan")), diagnosis=False)
    assert listener.pruned == (1, "diagnosis:nan") and trial.reported == {}


def test_the_user_s_request_comes_first_and_is_taken_once(tmp_path):
    listener, _, _ = hear(tmp_path, epoch(1, 3.0, "diverging"), trial=FakeTrial(prune=True), request=True)
    assert listener.pruned == (1, "user") and not (tmp_path / CONTROL_DIR / "prune").exists()


def test_the_pruner_s_decision_is_counted_apart(tmp_path):
    listener, _, _ = hear(tmp_path, epoch(1, 0.9), epoch(2, 0.8), trial=FakeTrial(prune=True))
    assert listener.pruned == (1, "pruner")  # the first epoch it said so; the later one changes nothing
