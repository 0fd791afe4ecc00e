"""README promises of a run: best.pth holds the best epoch, early stopping (across a resume), the cosine and
plateau schedules, torch.compile, and numbered checkpoints every N epochs."""

from __future__ import annotations

import dataclasses
import math
import shutil

import pytest
import torch

from engine.events import EpochCompleted, RunFinished
from engine.runs.checkpoints import load_checkpoint
from engine.training.control import RunControl
from engine.api import Run

SMALL = ("data.dataset='synthetic'", "data.options={ samples = 300 }", "data.batch_size=64", "model.hidden=[16]")


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster, and identically run after run, on one thread."""


def val_losses(monkeypatch, losses: list[float]) -> None:
    """Epoch N's validation loss is losses[N - 1] (the accuracy is the real one): the monitor's course is the test's."""
    real = Run.evaluate

    def evaluate(self, *args, **kwargs):
        scores = real(self, *args, **kwargs)
        return dataclasses.replace(scores, loss=losses[self.state.epoch])  # state.epoch: the epochs done before it

    monkeypatch.setattr(Run, "evaluate", evaluate)


def train(settings, resume_from=None, control=None, on_epoch=None):
    """(trainer, final event, EpochCompleted events); `on_epoch(trainer, event)` hears each epoch as it ends."""
    epochs = []
    trainer = Run(settings, [], control, resume_from=resume_from, set_threads=False)

    def listener(event):
        if isinstance(event, EpochCompleted):
            epochs.append(event)
            if on_epoch is not None:
                on_epoch(trainer, event)

    trainer.add_listener(listener)
    return trainer, trainer.run(), epochs


def test_best_pth_holds_the_weights_of_the_best_epoch_when_later_epochs_are_worse(tiny_settings, monkeypatch):
    val_losses(monkeypatch, [1.0, 0.5, 0.7, 0.9])
    weights = {}

    def keep_weights(trainer, event):  # heard after the epoch's checkpoints are written: the model is that epoch's
        weights[event.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    trainer, final, epochs = train(
        tiny_settings(*SMALL, "training.epochs=4", "training.monitor='val_loss'"), on_epoch=keep_weights
    )
    assert isinstance(final, RunFinished) and final.best_epoch == 2
    assert [e.is_best for e in epochs] == [True, True, False, False]
    best = torch.load(trainer.run_dir / "checkpoints" / "best.pth", weights_only=True)
    assert best.keys() == weights[2].keys()
    assert all(torch.equal(best[k], weights[2][k]) for k in best)
    assert not all(
        torch.equal(best[k], weights[4][k]) for k in best
    )  # the last epoch's weights differ: the check means something


def test_patience_stops_the_run_after_that_many_epochs_without_improvement(tiny_settings, monkeypatch):
    val_losses(monkeypatch, [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.9, 0.6, 0.5, 0.4])
    settings = tiny_settings(*SMALL, "training.epochs=10", "training.patience=3", "training.monitor='val_loss'")
    _, final, epochs = train(settings)
    assert (final.status, final.epochs_completed, final.best_epoch) == (
        "early_stopped",
        7,
        4,
    )  # epochs 5, 6, 7: no better than 0.7
    assert [e.epoch for e in epochs] == list(range(1, 8))
    assert "did not improve for 3 epochs" in final.reason


def test_the_count_of_epochs_without_improvement_carries_across_a_resume(tiny_settings, monkeypatch):
    val_losses(monkeypatch, [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.9, 0.6, 0.5, 0.4])
    control = RunControl()

    def stop_after_epoch_6(trainer, event):  # two of the three bad epochs done
        if event.epoch == 6:
            control.stop("test")

    settings = tiny_settings(*SMALL, "training.epochs=10", "training.patience=3", "training.monitor='val_loss'")
    first, stopped, _ = train(settings, control=control, on_epoch=stop_after_epoch_6)
    assert (stopped.status, stopped.epochs_completed) == ("stopped", 6)
    _, final, epochs = train(settings, resume_from=first.run_dir / "checkpoints" / "last.pth")
    assert [e.epoch for e in epochs] == [7]
    assert (final.status, final.epochs_completed, final.best_epoch) == (
        "early_stopped",
        7,
        4,
    )  # as the run that was never stopped


def test_cosine_follows_cosine_annealing_over_the_epochs(tiny_settings):
    epochs, lr = 6, 0.01
    _, final, events = train(
        tiny_settings(*SMALL, f"training.epochs={epochs}", f"training.lr={lr}", "training.scheduler='cosine'")
    )
    assert final.status == "completed"
    expected = [
        lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)
    ]  # CosineAnnealingLR, T_max = epochs, eta_min 0
    assert [e.lr for e in events] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr), T_max=epochs
    )
    by_torch = []
    for _ in range(epochs):
        by_torch.append(reference.get_last_lr()[0])
        reference.optimizer.step()
        reference.step()
    assert [e.lr for e in events] == pytest.approx(by_torch, rel=1e-12)


def test_plateau_lowers_the_rate_as_reduce_lr_on_plateau_does(tiny_settings, monkeypatch):
    losses = [1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77, 0.6, 0.65]
    val_losses(monkeypatch, losses)
    lr, gamma = 0.01, 0.5
    # patience 0: no early stop, and the scheduler's patience is max(1, patience // 2) = 1
    settings = tiny_settings(
        *SMALL,
        f"training.epochs={len(losses)}",
        f"training.lr={lr}",
        "training.scheduler='plateau'",
        f"training.gamma={gamma}",
        "training.patience=0",
        "training.monitor='val_loss'",
    )
    _, final, events = train(settings)
    assert final.status == "completed"
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr), mode="min", factor=gamma, patience=1
    )
    by_torch = []
    for loss in losses:
        by_torch.append(reference.optimizer.param_groups[0]["lr"])
        reference.step(loss)
    assert [e.lr for e in events] == pytest.approx(by_torch, rel=1e-12)
    assert sorted(set(by_torch), reverse=True) == pytest.approx(
        [lr, lr * gamma, lr * gamma**2]
    )  # it did lower the rate, twice


def test_compile_trains(tiny_settings):
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is not in this PyTorch")
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("torch.compile on the CPU needs a C compiler (cc, gcc or clang): none on PATH")
    settings = tiny_settings(*SMALL, "training.epochs=1", "training.compile=true", "training.accel=off")
    trainer, final, epochs = train(settings)
    assert isinstance(final, RunFinished) and final.status == "completed", final
    assert trainer.forward is not trainer.model and hasattr(trainer.forward, "_orig_mod")  # the compiled module trained
    assert math.isfinite(epochs[0].train_loss) and math.isfinite(epochs[0].val_loss)


def test_every_two_epochs_keeps_the_newest_two_numbered_checkpoints(tiny_settings):
    trainer, final, _ = train(tiny_settings(*SMALL, "training.epochs=7", "checkpoints.every=2", "checkpoints.keep=2"))
    assert final.status == "completed"
    folder = trainer.run_dir / "checkpoints"
    assert sorted(p.name for p in folder.glob("epoch_*.pth")) == ["epoch_4.pth", "epoch_6.pth"]
    for epoch in (4, 6):
        checkpoint = load_checkpoint(folder / f"epoch_{epoch}.pth")
        assert checkpoint["epoch"] == epoch
        assert len(checkpoint["history"]["val_loss"]) == epoch
