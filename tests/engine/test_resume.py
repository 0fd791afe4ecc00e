"""A run stopped and resumed trains exactly like the uninterrupted run (CPU, fixed seed).

Stops are made through RunControl from the emit callback, at an epoch
boundary and in the middle of an epoch, with dropout, a scheduler and
augmentation on, on both batch paths (in-memory tensors and DataLoader).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import engine.training.batches as batches_module
from engine.runs.checkpoints import load_checkpoint
from engine.settings.config import from_dict
from engine.events import BatchProgressed, EpochCompleted, RunFinished
from engine.api import Run
from engine.training.control import RunControl

COMPARED = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")
TOLERANCE = 1e-6


def make_settings(tmp_path: Path, **training):
    return from_dict(
        {
            "run": {"runs_dir": str(tmp_path / "runs"), "name": "resume", "seed": 7},
            "data": {
                "dataset": "digits",
                "batch_size": 64,
                "augment": True,
                "in_memory": training.pop("in_memory", "true"),
            },
            "model": {"name": "mlp", "hidden": [32], "dropout": 0.3},
            "training": {"epochs": 3, "scheduler": "onecycle", "lr": 3e-3, "step_size": 1, "gamma": 0.5, **training},
            "device": {"device": "cpu"},
        }
    )


class StopWhen:
    """An emit that records events and stops the run at (epoch, batch); batch 0 means after that epoch."""

    def __init__(self, control: RunControl, epoch: int | None = None, batch: int = 0):
        self.control, self.epoch, self.batch = control, epoch, batch
        self.events: list = []

    def __call__(self, event) -> None:
        self.events.append(event)
        if self.epoch is None:
            return
        if self.batch == 0 and isinstance(event, EpochCompleted) and event.epoch == self.epoch:
            self.control.stop("test")
        if (
            self.batch
            and isinstance(event, BatchProgressed)
            and event.epoch == self.epoch
            and event.batch >= self.batch
        ):
            self.control.stop("test")


def train(settings, *, stop_epoch=None, stop_batch=0, resume_from=None, stop_before_start=False):
    control = RunControl()
    emit = StopWhen(control, stop_epoch, stop_batch)
    trainer = Run(settings, emit, control, resume_from=resume_from, set_threads=False)
    trainer.setup()
    if stop_before_start:  # a signal during set-up: the stop lands before the epoch's first batch
        control.stop("test")
    final = trainer.run()
    assert isinstance(final, RunFinished), final
    return trainer, final, emit.events


def max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for key in COMPARED:
        assert len(a[key]) == len(b[key]), key
        for x, y in zip(a[key], b[key]):
            worst = max(worst, abs(x - y))
    return worst


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest and immune to a busy machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def every_batch_reports(monkeypatch):
    monkeypatch.setattr(
        batches_module, "PROGRESS_INTERVAL_S", 0.0
    )  # BatchProgressed after every batch, so a stop lands where asked


@pytest.fixture(scope="module")
def reference_histories(tmp_path_factory):
    """The uninterrupted run for each (scheduler, in_memory) pair, computed once."""
    cache = {}

    def get(scheduler: str, in_memory: str):
        if (scheduler, in_memory) not in cache:
            tmp = tmp_path_factory.mktemp("reference")
            trainer, final, _ = train(make_settings(tmp, scheduler=scheduler, in_memory=in_memory))
            assert final.status == "completed"
            cache[scheduler, in_memory] = trainer.state.history
        return cache[scheduler, in_memory]

    return get


@pytest.mark.parametrize("in_memory", ["true", "false"])
@pytest.mark.parametrize("scheduler", ["onecycle", "step"])
@pytest.mark.parametrize("stop_batch", [0, 9], ids=["epoch-boundary", "mid-epoch"])
def test_stopped_and_resumed_run_matches_uninterrupted(
    tmp_path, reference_histories, scheduler, in_memory, stop_batch, monkeypatch
):
    settings = make_settings(tmp_path, scheduler=scheduler, in_memory=in_memory)
    reference = reference_histories(scheduler, in_memory)

    first, final, _ = train(settings, stop_epoch=2 if stop_batch else 1, stop_batch=stop_batch)
    assert final.status == "stopped"
    last = first.run_dir / "checkpoints" / "last.pth"
    saved = load_checkpoint(last)
    assert (saved["epoch"], saved["batch"]) == ((1, stop_batch) if stop_batch else (1, 0))

    resumed, final, events = train(settings, resume_from=last)
    assert (final.status, final.epochs_completed) == ("completed", 3)
    assert resumed.run_dir == first.run_dir  # the run continues in its own folder
    assert [e.epoch for e in events if isinstance(e, EpochCompleted)] == [2, 3]
    diff = max_diff(resumed.state.history, reference)
    assert diff <= TOLERANCE, f"resumed run differs from the uninterrupted one by {diff}"

    rows = [json.loads(line) for line in (first.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, ref_loss in zip(rows, reference["val_loss"]):
        assert abs(row["val_loss"] - ref_loss) <= TOLERANCE


def test_two_stops_in_one_epoch_and_a_stop_before_its_first_batch(tmp_path, reference_histories):
    """Partial sums survive two mid-epoch stops; a stop before the first batch keeps the epoch's shuffle."""
    reference = reference_histories("onecycle", "true")
    settings = make_settings(tmp_path)
    first, _, _ = train(settings, stop_epoch=1)
    last = first.run_dir / "checkpoints" / "last.pth"
    train(settings, resume_from=last, stop_before_start=True)
    assert (load_checkpoint(last)["epoch"], load_checkpoint(last)["batch"]) == (1, 0)
    train(settings, resume_from=last, stop_epoch=2, stop_batch=5)
    train(settings, resume_from=last, stop_epoch=2, stop_batch=15)
    assert load_checkpoint(last)["batch"] == 15
    resumed, final, _ = train(settings, resume_from=last)
    assert final.status == "completed"
    assert max_diff(resumed.state.history, reference) <= TOLERANCE


def test_resumed_optimizer_scheduler_and_rng_match_the_checkpoint(tmp_path):
    settings = make_settings(tmp_path)
    first, _, _ = train(settings, stop_epoch=1)
    saved = load_checkpoint(first.run_dir / "checkpoints" / "last.pth")
    trainer = Run(
        settings, lambda e: None, resume_from=first.run_dir / "checkpoints" / "last.pth", set_threads=False
    )
    trainer.setup()
    try:
        assert trainer.state.epoch == 1
        assert (
            trainer.scheduler.state_dict()["last_epoch"]
            == saved["scheduler_state_dict"]["last_epoch"]
            == len(trainer.data.train)
        )
        assert trainer.optimizer.state_dict()["state"][0]["step"] == saved["optimizer_state_dict"]["state"][0]["step"]
        assert math.isclose(trainer.optimizer.param_groups[0]["lr"], saved["history"]["lr"][-1])
        import torch

        assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
        assert torch.equal(trainer.data.generator.get_state(), saved["rng"]["data"])
    finally:
        trainer.close()


def test_a_new_learning_rate_on_resume_is_the_rate_from_then_on(tiny_settings):
    from engine.runs.checkpoints import CheckpointError

    first = Run(tiny_settings("training.epochs=1"), set_threads=False)
    first.run()
    last = first.run_dir / "checkpoints" / "last.pth"
    events = []
    Run(
        tiny_settings("training.epochs=2", "training.lr=0.005"), events.append, resume_from=last, set_threads=False
    ).run()
    assert [e.lr for e in events if isinstance(e, EpochCompleted)] == [0.005]
    scheduled = Run(tiny_settings("training.epochs=3", "training.scheduler='step'"), set_threads=False)
    scheduled.run()
    resumed = Run(
        tiny_settings("training.epochs=4", "training.scheduler='step'", "training.lr=0.01"),
        resume_from=scheduled.run_dir / "checkpoints" / "last.pth",
        set_threads=False,
    )
    with pytest.raises(CheckpointError, match="scheduler 'step' set its rates from lr = 0.001"):
        resumed.setup()
