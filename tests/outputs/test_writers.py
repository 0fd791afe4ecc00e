"""metrics.csv and TensorBoard scalars of real tiny runs, read back by csv and by TensorBoard's own reader."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from engine.events import EPOCH_RECORD_FIELDS, BatchProgressed, EpochCompleted
from engine.outputs import run_folder_writers
from engine.outputs.tensorboard import TAGS
from engine.settings.config import SettingsError
from engine.api import Run
from engine.training.control import RunControl

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(run_dir: Path, purge: bool = True) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows (purge: as its UI reads them; without, every value in the files)."""
    acc = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={event_accumulator.SCALARS: 0}, purge_orphaned_data=purge
    )
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def jsonl_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_csv_matches_jsonl(run_dir: Path) -> None:
    jsonl, rows = jsonl_rows(run_dir), csv_rows(run_dir)
    assert [r["epoch"] for r in rows] == [str(r["epoch"]) for r in jsonl]
    for line, row in zip(jsonl, rows):
        assert list(row) == list(EPOCH_RECORD_FIELDS)
        for name in EPOCH_RECORD_FIELDS:
            assert row[name] == str(line[name]), name  # the same text as the number's JSON: the same number


class StopAt:
    """Stops the run in the middle of `epoch` (after its `batch`)."""

    def __init__(self, control: RunControl, epoch: int, batch: int):
        self.control, self.epoch, self.batch = control, epoch, batch

    def __call__(self, event) -> None:
        if isinstance(event, BatchProgressed) and (event.epoch, event.batch) == (self.epoch, self.batch):
            self.control.stop("test")


def test_a_run_logs_the_five_tags_once_per_epoch_and_metrics_csv_matches_metrics_jsonl(tiny_settings):
    final = Run(tiny_settings("training.epochs=3", "logging.tensorboard=true")).run()
    run_dir = Path(final.run_dir)
    found = scalars(run_dir)
    assert set(found) == set(TAGS)
    rows = jsonl_rows(run_dir)
    for tag, name in TAGS.items():
        assert [step for step, _ in found[tag]] == [1, 2, 3]
        assert [value for _, value in found[tag]] == pytest.approx([r[name] for r in rows], rel=1e-6)
    assert len(csv_rows(run_dir)) == 3
    assert_csv_matches_jsonl(run_dir)


def test_stopped_mid_epoch_and_resumed_keeps_exactly_one_value_per_epoch(tiny_settings):
    settings = tiny_settings("training.epochs=4", "logging.tensorboard=true", "data.batch_size=256")
    control = RunControl()
    first = Run(settings, StopAt(control, 3, 2), control, progress_interval_s=0).run()
    assert first.status == "stopped" and first.epochs_completed == 2
    run_dir = Path(first.run_dir)
    assert [s for s, _ in scalars(run_dir)["Loss/val"]] == [1, 2]
    final = Run(settings, resume_from=run_dir / "checkpoints" / "last.pth").run()
    assert final.status == "completed" and Path(final.run_dir) == run_dir
    found, rows = scalars(run_dir, purge=False), jsonl_rows(run_dir)
    for tag, name in TAGS.items():
        assert [s for s, _ in found[tag]] == [1, 2, 3, 4], tag  # in the files: nothing logged twice
        assert [v for _, v in found[tag]] == pytest.approx([r[name] for r in rows], rel=1e-6)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # appended: a new file, the old one kept
    assert_csv_matches_jsonl(run_dir)


def test_a_rewound_resume_replaces_the_abandoned_epochs(tiny_settings):
    """A resume from epoch_2.pth after 4 epochs, stopped before it ends an epoch, then resumed again:
    metrics.jsonl, metrics.csv and TensorBoard hold epochs 1-2, then 1-4 once, the last two from the second run."""
    settings = tiny_settings(
        "training.epochs=4", "logging.tensorboard=true", "checkpoints.every=2", "data.batch_size=256"
    )
    run_dir = Path(Run(settings).run().run_dir)
    before = jsonl_rows(run_dir)
    control = RunControl()
    rewound = Run(
        settings,
        StopAt(control, 3, 2),
        control,
        progress_interval_s=0,
        resume_from=run_dir / "checkpoints" / "epoch_2.pth",
    ).run()
    assert rewound.status == "stopped" and rewound.epochs_completed == 2
    assert [s for s, _ in scalars(run_dir)["Loss/train"]] == [1, 2]  # epochs 3-4 of the first run are hidden
    assert len(csv_rows(run_dir)) == 2
    events = []
    Run(settings, events.append, resume_from=run_dir / "checkpoints" / "last.pth").run()
    redone = {e.epoch: e for e in events if isinstance(e, EpochCompleted)}
    assert sorted(redone) == [3, 4]
    found = scalars(run_dir)
    assert [s for s, _ in found["Loss/train"]] == [1, 2, 3, 4]
    assert [v for _, v in found["Loss/train"]][:2] == pytest.approx([r["train_loss"] for r in before[:2]])
    assert [v for _, v in found["Loss/train"]][2:] == pytest.approx([redone[3].train_loss, redone[4].train_loss])
    assert len(csv_rows(run_dir)) == 4
    assert_csv_matches_jsonl(run_dir)


def test_tensorboard_false_writes_no_event_file_but_metrics_csv(tiny_settings):
    run_dir = Path(Run(tiny_settings("logging.tensorboard=false")).run().run_dir)
    assert not list(run_dir.glob("events.out.tfevents.*"))
    assert len(csv_rows(run_dir)) == 2


def test_a_missing_extra_is_one_settings_line_when_asked_for_and_skipped_with_auto(
    tiny_settings, tmp_path, monkeypatch
):
    import engine.outputs as outputs

    monkeypatch.setattr(outputs, "installed", lambda module: False)
    (tmp_path / "run").mkdir()
    with pytest.raises(SettingsError) as error:
        run_folder_writers(tiny_settings("logging.tensorboard=true"), tmp_path / "run")
    assert str(error.value) == "logging.tensorboard = true needs tensorboard: pip install 'trainconsole[tensorboard]'"
    assert not (tmp_path / "run" / "metrics.csv").exists()  # refused before anything was written
    writers = run_folder_writers(tiny_settings("logging.tensorboard=auto"), tmp_path / "run")
    assert [type(w).__name__ for w in writers] == ["MetricsCsvWriter"]
    for w in writers:
        w.close()


def test_a_missing_extra_asked_for_stops_the_run_before_its_files_are_written(tiny_settings, tmp_path, monkeypatch):
    import engine.outputs as outputs

    monkeypatch.setattr(outputs, "installed", lambda module: False)
    with pytest.raises(SettingsError, match="trainconsole\\[tensorboard\\]"):
        Run(tiny_settings("logging.tensorboard=true")).run()
    left = [p.name for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert not [n for n in left if n.startswith("events.out") or n in ("metrics.csv", "metrics.jsonl", "settings.toml")]


def test_nan_losses_are_written_as_nan_in_both_files(tmp_path):
    from engine.events import Diagnostic
    from engine.outputs.csv_log import MetricsCsvWriter

    writer = MetricsCsvWriter(tmp_path)
    writer.on_event(
        EpochCompleted(1, 1, float("nan"), 1.0, 0.5, 0.5, 1e-3, 1.0, 10.0, Diagnostic("nan", "x"), False, None)
    )
    writer.close()
    assert math.isnan(float(csv_rows(tmp_path)[0]["train_loss"]))
