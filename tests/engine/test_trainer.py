"""Trainer edge cases.

Best selection, NaN epochs, resume of finished runs, the run lock, final events, no per-batch sync.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import engine.training.batches as batches_module
import engine.training.accel as accel_module
from engine.runs.checkpoints import CheckpointError, load_checkpoint
from engine.settings.config import SettingsError, from_dict
from engine.events import BatchProgressed, CheckpointSaved, EpochCompleted, RunFailed, RunFinished
from engine.runs.folder import read_jsonl
from engine.runs.status import run_status
from engine.api import Run
from engine.training.control import RunControl
from engine.training.loop import Scores


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster, and identically run after run, on one thread."""


def make_settings(tmp_path: Path, training=None, **sections):
    data = {
        "run": {"runs_dir": str(tmp_path / "runs"), "name": "t", "seed": 1},
        "data": {"dataset": "synthetic", "batch_size": 64, "options": {"samples": 600}},
        "model": {"hidden": [16]},
        "training": {"epochs": 2, **(training or {})},
        "device": {"device": "cpu"},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return from_dict(data)


def run(settings, resume_from=None, control=None):
    events = []
    trainer = Run(settings, events.append, control, resume_from=resume_from, set_threads=False)
    final = trainer.run()
    return trainer, final, events


def test_nan_epoch_never_becomes_best_even_when_its_accuracy_is(tmp_path, monkeypatch):
    real = Run.evaluate

    def evaluate(self):
        scores = real(self)  # epoch 1: NaN loss, perfect accuracy
        return dataclasses.replace(scores, loss=float("nan"), accuracy=1.0) if self.state.epoch == 0 else scores

    monkeypatch.setattr(Run, "evaluate", evaluate)
    trainer, final, events = run(make_settings(tmp_path, {"monitor": "val_acc", "stop_on_nan": False, "epochs": 2}))
    assert isinstance(final, RunFinished)
    epochs = [e for e in events if isinstance(e, EpochCompleted)]
    assert [e.is_best for e in epochs] == [False, True]
    assert [e.epoch for e in events if isinstance(e, CheckpointSaved) and e.kind == "best"] == [2]
    assert trainer.state.best_epoch == 2


def test_best_follows_the_monitor(tmp_path, monkeypatch):
    accs = iter([0.5, 0.7, 0.6])
    losses = iter([0.9, 0.95, 0.8])
    monkeypatch.setattr(Run, "evaluate", lambda self: Scores(next(losses), next(accs)))
    _, _, by_acc = run(make_settings(tmp_path / "a", {"monitor": "val_acc", "epochs": 3}))
    assert [e.is_best for e in by_acc if isinstance(e, EpochCompleted)] == [True, True, False]
    accs, losses = iter([0.5, 0.7, 0.6]), iter([0.9, 0.95, 0.8])
    trainer, _, by_loss = run(make_settings(tmp_path / "b", {"epochs": 3}))
    assert [e.is_best for e in by_loss if isinstance(e, EpochCompleted)] == [True, False, True]
    assert [json.loads(line)["is_best"] for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()] == [
        True,
        False,
        True,
    ]


def test_resume_of_a_completed_run_needs_more_epochs(tmp_path):
    settings = make_settings(tmp_path, {"scheduler": "onecycle"})
    first, final, _ = run(settings)
    last = first.run_dir / "checkpoints" / "last.pth"
    with pytest.raises(SettingsError, match="already trained 2 epochs.*training.epochs"):
        Run(settings, lambda e: None, resume_from=last, set_threads=False).setup()

    # raised: epochs keep counting and a one-cycle schedule is laid out for the new length (no 'stepped too many times')
    longer = settings.replace("training.epochs", 4)
    trainer, final, events = run(longer, resume_from=last)
    assert isinstance(final, RunFinished) and final.status == "completed", final
    assert [e.epoch for e in events if isinstance(e, EpochCompleted)] == [3, 4]
    assert [r["epoch"] for r in read_jsonl(first.run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    assert trainer.run_dir == first.run_dir and load_checkpoint(last)["epoch"] == 4
    assert all(math.isfinite(lr) for lr in trainer.state.history["lr"])


def test_resume_from_best_pth_is_refused_with_a_clear_error(tmp_path):
    settings = make_settings(tmp_path)
    first, _, _ = run(settings)
    with pytest.raises(CheckpointError, match="not a full checkpoint.*last.pth"):
        Run(
            settings, lambda e: None, resume_from=first.run_dir / "checkpoints" / "best.pth", set_threads=False
        ).setup()


def test_a_checkpoint_outside_its_run_folder_resumes_into_a_new_folder(tmp_path):
    settings = make_settings(tmp_path)
    first, _, _ = run(settings)
    loose = tmp_path / "copied.pth"
    loose.write_bytes((first.run_dir / "checkpoints" / "last.pth").read_bytes())
    trainer, final, _ = run(settings.replace("training.epochs", 3), resume_from=loose)
    assert final.status == "completed"
    assert trainer.run_dir.parent == tmp_path / "runs" and trainer.run_dir != first.run_dir
    assert not (tmp_path / "settings.toml").exists()  # nothing written next to the loose file


def test_the_run_lock_keeps_a_second_trainer_out(tmp_path):
    settings = make_settings(tmp_path, {"epochs": 1})
    first, _, _ = run(settings)
    last = first.run_dir / "checkpoints" / "last.pth"
    longer = settings.replace("training.epochs", 3)
    holder = Run(longer, lambda e: None, resume_from=last, set_threads=False)
    holder.setup()
    try:
        assert run_status(first.run_dir).status == "running"
        with pytest.raises(SettingsError, match="another process is training"):
            Run(longer, lambda e: None, resume_from=last, set_threads=False).setup()
    finally:
        holder.close()
    second = Run(longer, lambda e: None, resume_from=last, set_threads=False)
    second.setup()  # free again once released
    second.close()


def test_events_end_with_run_finished_or_run_failed(tmp_path, monkeypatch):
    trainer, final, _ = run(make_settings(tmp_path / "ok"))
    last = list(read_jsonl(trainer.run_dir / "events.jsonl"))[-1]
    assert last["type"] == "RunFinished" and last["status"] == "completed"
    assert run_status(trainer.run_dir).status == "completed"

    def broken(self):
        raise RuntimeError("boom in the loop")

    monkeypatch.setattr(Run, "_train_epoch", broken)
    trainer, final, _ = run(make_settings(tmp_path / "bad"))
    assert isinstance(final, RunFailed) and "boom in the loop" in final.error
    assert list(read_jsonl(trainer.run_dir / "events.jsonl"))[-1]["type"] == "RunFailed"
    assert run_status(trainer.run_dir).status == "failed"


def test_stop_reports_stopped_and_saves_the_position(tmp_path, monkeypatch):
    monkeypatch.setattr(batches_module, "PROGRESS_INTERVAL_S", 0.0)
    control = RunControl()

    def emit(event):
        if type(event).__name__ == "BatchProgressed" and event.batch == 3:
            control.stop("test stop")

    trainer = Run(make_settings(tmp_path), emit, control, set_threads=False)
    final = trainer.run()
    assert (final.status, final.reason) == ("stopped", "test stop")
    saved = load_checkpoint(trainer.run_dir / "checkpoints" / "last.pth")
    assert (saved["epoch"], saved["batch"], saved["partial"]["seen"]) == (0, 3, 3 * 64)
    assert list(read_jsonl(trainer.run_dir / "events.jsonl"))[-1]["status"] == "stopped"


def test_the_batch_a_run_stops_at_is_reported_and_recorded_between_ticks(tmp_path, monkeypatch):
    """A stop between two throttled ticks still tells watchers (and events.jsonl) the exact batch saved."""
    monkeypatch.setattr(batches_module, "PROGRESS_INTERVAL_S", 1e9)  # no tick inside an epoch but its last batch
    events = []
    trainer = Run(make_settings(tmp_path, {"accel": "off"}), events.append, set_threads=False)
    trainer.setup()
    trainer.session.recorder.PROGRESS_EVERY_S = 1e9  # the recorder thins every tick after its first away
    batches, calls = len(trainer.data.train), {"n": 0}

    def stop_at_the_fifth_batch_of_epoch_2(module, args, output):
        calls["n"] += module.training
        if calls["n"] == batches + 5:
            trainer.control.stop("test stop")

    trainer.model.register_forward_hook(stop_at_the_fifth_batch_of_epoch_2)
    final = trainer.run()
    assert final.status == "stopped"
    saved = load_checkpoint(trainer.run_dir / "checkpoints" / "last.pth")
    ticks = [e for e in events if isinstance(e, BatchProgressed) and e.epoch == 2]
    assert saved["epoch"] == 1 and [t.batch for t in ticks] == [saved["batch"]] and 0 < saved["batch"] < batches
    recorded = list(read_jsonl(trainer.run_dir / "events.jsonl"))
    assert [(e["type"], e.get("batch")) for e in recorded[-2:]] == [
        ("BatchProgressed", saved["batch"]),
        ("RunFinished", None),
    ]


def test_the_hot_loop_syncs_only_at_the_progress_tick(tmp_path, monkeypatch):
    """Host syncs (item/float/int/bool of a tensor) per epoch do not grow with the number of batches."""
    monkeypatch.setattr(batches_module, "PROGRESS_INTERVAL_S", 1e9)  # only the epoch's last batch ticks
    counts = {"n": 0}
    for name in ("item", "__float__", "__int__", "__bool__"):
        real = getattr(torch.Tensor, name)

        def counting(self, *a, _real=real, **k):
            counts["n"] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)

    def syncs(batch_size: int) -> int:
        settings = make_settings(
            tmp_path / str(batch_size), {"epochs": 1, "optimizer": "sgd"}, data={"batch_size": batch_size}
        )
        trainer = Run(settings, lambda e: None, set_threads=False)
        trainer.setup()
        counts["n"] = 0
        trainer._train_epoch()
        trainer.close()
        return counts["n"], len(trainer.data.train)

    few, many = syncs(120), syncs(8)
    assert many[1] > 10 * few[1]
    assert few[0] == many[0] <= 4, (few, many)


def test_paused_time_is_left_out_of_the_epoch_time_and_rate(tmp_path, monkeypatch):
    """A pause in the middle of epoch 1: its seconds and samples/s are those of the training, not of the wait."""
    import threading

    monkeypatch.setattr(batches_module, "PROGRESS_INTERVAL_S", 0.0)
    control = RunControl()
    events = []

    def emit(event):
        events.append(event)
        if type(event).__name__ == "BatchProgressed" and (event.epoch, event.batch) == (1, 3):
            control.pause()
            threading.Timer(1.5, control.resume).start()

    final = Run(make_settings(tmp_path), emit, control, set_threads=False).run()
    assert final.status == "completed"
    assert any(type(e).__name__ == "RunPaused" for e in events)
    first, second = [e for e in events if isinstance(e, EpochCompleted)]
    assert first.seconds < 1.0, first.seconds  # the 1.5 s pause is not in it
    assert first.samples_per_s > 600 / 1.0
    assert final.seconds > 1.5  # the run's wall time still holds it


def test_a_resume_keeps_each_epochs_time_in_metrics(tmp_path):
    """metrics.jsonl is rewritten from the checkpoint on resume.

    Every row keeps its `time` (None for older checkpoints).
    """
    settings = make_settings(tmp_path, {"epochs": 3})
    control = RunControl()
    trainer = Run(
        settings,
        lambda e: isinstance(e, EpochCompleted) and e.epoch == 1 and control.stop("test"),
        control,
        set_threads=False,
    )
    trainer.run()
    run_dir = trainer.run_dir
    first = list(read_jsonl(run_dir / "metrics.jsonl"))
    last = run_dir / "checkpoints" / "last.pth"
    _, final, _ = run(settings, resume_from=last)
    rows = list(read_jsonl(run_dir / "metrics.jsonl"))
    assert final.status == "completed" and [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[0]["time"] == first[0]["time"] and all(isinstance(r["time"], float) for r in rows)

    old = load_checkpoint(last)  # a checkpoint from before `time` was kept in the history
    del old["history"]["time"]
    torch.save(old, last)
    _, final, _ = run(settings.replace("training.epochs", 4), resume_from=last)
    rows = list(read_jsonl(run_dir / "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["time"] is None for r in rows] == [True, True, True, False]


def test_a_listener_can_ask_for_fewer_progress_ticks(tmp_path):
    """The console draws its bar 4 times a second and asks for no more ticks than that; the last batch always ticks."""
    for interval, expected in ((0.0, 8), (1e9, 1)):  # 600 synthetic samples, 480 for training: 8 batches
        events = []
        settings = make_settings(tmp_path / str(interval), {"epochs": 1})
        Run(settings, events.append, set_threads=False, progress_interval_s=interval).run()
        ticks = [e for e in events if isinstance(e, BatchProgressed)]
        assert len(ticks) == expected
        assert (ticks[-1].batch, ticks[-1].batches) == (8, 8)


def test_a_run_resizes_its_threads_when_other_processes_take_cores(tmp_path):
    from engine.events import ThreadsChanged
    from engine.training.accel.threads import ThreadFollower

    class BusyCores:  # CoreWatch's answer when another process took one of two cores
        last_elsewhere = 1.0

        def poll(self):
            return 1

    events = []
    trainer = Run(make_settings(tmp_path, {"epochs": 1}), events.append, set_threads=False, progress_interval_s=0.0)
    trainer.setup()
    assert trainer.thread_plan.follower is None  # set_threads=False, no follow_free_cores: the caller owns the threads
    trainer.thread_plan.threads, trainer.thread_plan.follower = 2, ThreadFollower(BusyCores())
    try:
        trainer.run()
    finally:
        torch.set_num_threads(1)
    changes = [e for e in events if isinstance(e, ThreadsChanged)]
    assert [(e.epoch, e.previous, e.threads, e.busy_elsewhere) for e in changes] == [
        (1, 2, 1, 1.0)
    ]  # once, not at every tick
    assert trainer.threads == 1
    assert any(json.loads(line)["type"] == "ThreadsChanged" for line in open(Path(trainer.run_dir) / "events.jsonl"))


def test_a_run_on_several_threads_watches_the_cores_and_one_on_a_single_thread_does_not(tmp_path, monkeypatch):
    monkeypatch.setattr(accel_module, "thread_choices", lambda requested, *_, **__: (requested or 2,))
    try:
        watched = {}
        for name, threads in (("auto", 0), ("fixed", 2), ("one", 1)):
            trainer = Run(
                make_settings(tmp_path / name, {"epochs": 1}, device={"threads": threads}), lambda e: None
            )
            trainer.setup()
            follower = trainer.thread_plan.follower
            watched[name] = follower is not None and follower.watch.chosen
            trainer.close()
        assert watched == {"auto": 2, "fixed": 2, "one": False}  # threads = 2 is the most a run uses
    finally:
        torch.set_num_threads(1)


def test_a_run_times_its_first_steps_on_one_thread_and_on_the_free_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(accel_module, "thread_choices", lambda *_, **__: (1, 2))
    events = []
    try:
        trainer = Run(make_settings(tmp_path, {"epochs": 6}), events.append)  # 8 steps an epoch: the trial spans 5
        trainer.run()
    finally:
        torch.set_num_threads(1)
    started = next(e for e in events if type(e).__name__ == "RunStarted")
    decided = [e for e in events if type(e).__name__ == "ThreadsChanged"]
    assert started.threads == 1 and decided, decided
    assert decided[0].reason.startswith("timed the first steps: 1 thread ") and ", 2 threads " in decided[0].reason
    # a busy machine may have kept one thread, then a second trial more: said only when the count changed
    assert all(e.reason.startswith("timed again: ") or not e.reason for e in decided[1:]), decided
    assert trainer.threads == decided[-1].threads in (1, 2)
    assert (trainer.thread_plan.follower is not None) == (trainer.threads == 2)  # more than one: it follows the cores


# -- NaN never destroys a checkpoint ----------------------------------------------------------------------------


class PoisonAfter:
    """A listener that fills the weights with NaN once epoch `epoch` has ended (and its checkpoints are written),
    keeping a copy of the weights it found; with `stop`, it asks the run to stop at the next batch."""

    def __init__(self, epoch: int, control: RunControl | None = None):
        self.epoch, self.control, self.trainer, self.kept = epoch, control, None, None
        self.events: list = []

    def __call__(self, event) -> None:
        self.events.append(event)
        if isinstance(event, EpochCompleted) and event.epoch == self.epoch:
            self.kept = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}
            with torch.no_grad():
                for p in self.trainer.model.parameters():
                    p.fill_(float("nan"))
        elif isinstance(event, BatchProgressed) and self.control is not None and self.kept is not None:
            self.control.stop("stop asked while the weights are NaN")


def run_poisoned(tmp_path: Path, training: dict, stop: bool = False):
    settings = make_settings(tmp_path, {"epochs": 4, **training}, checkpoints={"every": 1, "keep": 10})
    control = RunControl() if stop else None
    poison = PoisonAfter(2, control)
    trainer = Run(settings, poison, control, set_threads=False, progress_interval_s=0.0)
    trainer.setup()
    poison.trainer = trainer
    return trainer, trainer.run(), poison


def assert_checkpoints_hold_epoch_2(run_dir: Path, kept: dict) -> None:
    folder = run_dir / "checkpoints"
    assert sorted(p.name for p in folder.glob("epoch_*.pth")) == ["epoch_1.pth", "epoch_2.pth"]
    last = load_checkpoint(folder / "last.pth")
    assert last["epoch"] == 2 and last.get("batch", 0) == 0
    for name, state in (("last", last["model_state_dict"]), ("best", torch.load(folder / "best.pth"))):
        assert state.keys() == kept.keys(), name
        for key, value in state.items():
            assert torch.isfinite(value).all() and torch.equal(value, kept[key]), (name, key)


def test_a_nan_epoch_writes_no_checkpoint_and_ends_the_run_as_nan(tmp_path):
    trainer, final, poison = run_poisoned(tmp_path, {"stop_on_nan": True})
    assert isinstance(final, RunFinished) and final.status == "nan" and final.epochs_completed == 3
    assert "at epoch 3" in final.reason and "the checkpoints keep epoch 2" in final.reason, final.reason
    assert_checkpoints_hold_epoch_2(trainer.run_dir, poison.kept)
    assert run_status(trainer.run_dir).status == "nan"  # `trainconsole run` and `wait` exit 1 on it
    saved = [e.epoch for e in poison.events if isinstance(e, CheckpointSaved)]
    assert max(saved) == 2


def test_without_stop_on_nan_the_run_goes_on_and_says_no_checkpoint_is_written(tmp_path):
    trainer, final, poison = run_poisoned(tmp_path, {"stop_on_nan": False})
    assert isinstance(final, RunFinished) and final.status == "completed" and final.epochs_completed == 4
    epochs = [e for e in poison.events if isinstance(e, EpochCompleted)]
    assert [e.diagnostic.status == "nan" for e in epochs] == [False, False, True, True]
    said = "no checkpoint written from non-finite weights (the checkpoints keep epoch 2)"
    assert said in epochs[2].diagnostic.message
    assert_checkpoints_hold_epoch_2(trainer.run_dir, poison.kept)


def test_a_stop_while_the_weights_are_nan_leaves_last_pth_at_the_last_finite_epoch(tmp_path):
    trainer, final, poison = run_poisoned(tmp_path, {"stop_on_nan": False}, stop=True)
    assert isinstance(final, RunFinished) and final.status == "nan", final
    assert "stopped at batch" in final.reason and "the checkpoints keep epoch 2" in final.reason, final.reason
    assert_checkpoints_hold_epoch_2(trainer.run_dir, poison.kept)


def test_a_diverging_learning_rate_keeps_the_last_finite_weights(tmp_path):
    kept = {}

    def keep_saved(event):
        if isinstance(event, CheckpointSaved) and event.kind == "last":
            kept.update(load_checkpoint(Path(event.path)))

    settings = make_settings(tmp_path, {"epochs": 15, "optimizer": "sgd", "lr": 10.0, "momentum": 0.99})
    trainer = Run(settings, keep_saved, set_threads=False)
    final = trainer.run()
    assert isinstance(final, RunFinished) and final.status == "nan", final  # the loss grows ~1e4 an epoch to inf
    last = load_checkpoint(trainer.run_dir / "checkpoints" / "last.pth")
    assert last["epoch"] == kept["epoch"] == final.epochs_completed - 1 > 0
    for key, value in last["model_state_dict"].items():
        assert torch.isfinite(value).all() and torch.equal(value, kept["model_state_dict"][key]), key
