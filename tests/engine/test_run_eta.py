"""The run's ETA in BatchProgressed: this epoch's remaining batches, then the epochs after it at the last epochs'
pace (at this epoch's batch rate before one has ended); an upper bound when early stopping may end the run."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.events import BatchProgressed, EpochCompleted
from engine.runs.records import event_record
from engine.settings.config import from_dict
from engine.training.batches import RunHorizon
from engine.training.trainer import Trainer


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster on one thread."""


def _settings(tmp_path: Path, epochs: int, patience: int = 0):
    return from_dict(
        {
            "run": {"runs_dir": str(tmp_path / "runs"), "seed": 1},
            "data": {"dataset": "synthetic", "batch_size": 64, "options": {"samples": 600}},
            "model": {"hidden": [16]},
            "training": {"epochs": epochs, "patience": patience},
            "device": {"device": "cpu"},
        }
    )


def _train(settings) -> list:
    events: list = []
    Trainer(settings, events.append, set_threads=False, progress_interval_s=0.0).run()  # a tick after every batch
    return events


def test_the_run_eta_counts_the_epochs_left_at_the_pace_measured(tmp_path):
    events = _train(_settings(tmp_path, epochs=4))
    seconds = {e.epoch: e.seconds for e in events if isinstance(e, EpochCompleted)}
    ticks = [e for e in events if isinstance(e, BatchProgressed)]
    assert sorted({t.epoch for t in ticks}) == [1, 2, 3, 4] and len(seconds) == 4
    checked = set()
    for tick in ticks:
        if tick.epoch == 1:  # no epoch has ended: the 3 after it at this epoch's batch rate
            if tick.batch == tick.batches:
                continue  # no batch left to read the rate from
            expected = tick.eta_s + 3 * tick.batches * tick.eta_s / (tick.batches - tick.batch)
        else:  # the epochs after this one at the mean time of those that ended (validation included)
            ended = [seconds[n] for n in range(1, tick.epoch)]
            expected = tick.eta_s + (4 - tick.epoch) * sum(ended) / len(ended)
        assert math.isclose(tick.run_eta_s, expected, rel_tol=1e-9, abs_tol=1e-12), tick
        assert not tick.run_eta_at_most  # no early stopping: the run trains all its epochs
        checked.add(tick.epoch)
    assert checked == {1, 2, 3, 4}
    last = [t for t in ticks if t.epoch == 4]
    assert [t.run_eta_s for t in last] == [t.eta_s for t in last]  # the last epoch: the run ends with it
    assert ticks[-1].run_eta_s == 0.0


def test_under_early_stopping_the_run_eta_is_an_upper_bound(tmp_path):
    ticks = [e for e in _train(_settings(tmp_path, epochs=2, patience=3)) if isinstance(e, BatchProgressed)]
    assert ticks and all(t.run_eta_at_most for t in ticks)
    assert all(t.run_eta_s >= t.eta_s for t in ticks)


def test_the_pace_is_the_mean_of_the_last_three_epochs_a_resumed_run_included():
    history = {"seconds": [100.0, None, 4.0, 5.0, 6.0]}  # None: an epoch an older checkpoint kept no time of
    trainer = SimpleNamespace(
        state=SimpleNamespace(history=history),
        settings=SimpleNamespace(training=SimpleNamespace(epochs=10)),
        improvement=SimpleNamespace(patience=0),
    )
    horizon = RunHorizon.of(trainer, epoch=6)
    assert horizon == RunHorizon(epochs_after=4, epoch_s=5.0, at_most=False)
    assert horizon.run_eta(epoch_eta=2.0, batches=50, batch_s=0.1) == 2.0 + 4 * 5.0
    first = RunHorizon.of(SimpleNamespace(**{**vars(trainer), "state": SimpleNamespace(history={})}), epoch=1)
    assert first.epoch_s is None and first.run_eta(epoch_eta=2.0, batches=50, batch_s=0.1) == 2.0 + 9 * 50 * 0.1


def test_events_jsonl_keeps_the_run_eta_and_reads_older_lines_without_it():
    tick = BatchProgressed(2, 5, 8, 900.0, 1.5, 0.4, 12.5, True, time=1.0)
    assert event_record(tick.to_dict()) == tick
    older = {k: v for k, v in tick.to_dict().items() if not k.startswith("run_eta")}
    read = event_record(older)
    assert read is not None and read.run_eta_s is None and read.run_eta_at_most is False
    assert event_record({**tick.to_dict(), "run_eta_s": "soon"}) is None  # a wrong type: the line is skipped
