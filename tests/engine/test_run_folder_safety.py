"""A run folder's files are written only as regular files inside it; a full disk fails the run cleanly; a resume
whose settings no longer fit its checkpoint is refused before anything is written.

A downloaded run folder may hold symlinks to files of the user's (`metrics.jsonl -> ~/.bashrc`): resuming it
must refuse them with one line, leaving their targets untouched. A full disk is injected here as the OSError
(errno.ENOSPC) a writer meets; tests/e2e/test_disk_faults.py fills a real tmpfs.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import engine.io.atomic
import engine.runs.folder
from engine.runs import checkpoints as ck
from engine.runs.checkpoints import CheckpointError, atomic_save, load_checkpoint
from engine.settings.config import SettingsError, from_dict
from engine.events import (
    BatchProgressed,
    CheckpointSaved,
    EpochCompleted,
    RunFailed,
    RunFinished,
    RunPaused,
    RunResumed,
)
from engine.runs.folder import RunRecorder, is_locked, read_jsonl
from engine.api import Run
from engine.training.control import RunControl

VICTIM = "the user's own file: a run must never write here\n"
FULL = "No space left on device"


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster on one thread."""


def make_settings(runs_dir: Path, **training):
    return from_dict(
        {
            "run": {"runs_dir": str(runs_dir), "name": "safe", "seed": 3},
            "data": {"dataset": "digits", "batch_size": 128},
            "model": {"name": "mlp", "hidden": [16]},
            "training": {"epochs": 1, **training},
            "checkpoints": {"every": 1, "keep": 1},
            "device": {"device": "cpu"},
        }
    )


def train(settings, resume_from=None, emit=None, control=None):
    events = []

    def listen(event):
        events.append(event)
        if emit is not None:
            emit(event)

    trainer = Run(settings, listen, control, resume_from=resume_from, set_threads=False)
    final = trainer.run()
    return trainer, final, events


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory) -> Path:
    """A finished 1-epoch run, copied by each test that changes it."""
    _, final, _ = train(make_settings(tmp_path_factory.mktemp("template") / "runs"))
    assert isinstance(final, RunFinished) and final.status == "completed"
    return Path(final.run_dir)


@pytest.fixture
def run_copy(one_epoch_run, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "downloaded" / "safe"
    shutil.copytree(one_epoch_run, copy)
    return copy


def snapshot_of(folder: Path) -> dict[str, bytes | str]:
    """Every entry under folder: a file's bytes, a link's target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (
            f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        )
    return out


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text, text
    return text


# -- symlinks and hard links in a downloaded run folder ----------------------------------------


def _link_to_victim(run_dir: Path, name: str, tmp_path: Path, as_copy_of: Path | None = None) -> Path:
    victim = tmp_path / "victim" / Path(name).name
    victim.parent.mkdir(exist_ok=True)
    if as_copy_of is not None:
        victim.write_bytes(as_copy_of.read_bytes())
    else:
        victim.write_text(VICTIM)
    link = run_dir / name
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    return victim


LINKED_FILES = [
    "metrics.jsonl",
    "events.jsonl",
    "settings.toml",
    ".lock",
    "checkpoints/best.pth",
    "checkpoints/epoch_2.pth",
]


@pytest.mark.parametrize("name", LINKED_FILES)
def test_resume_refuses_a_symlinked_run_file_and_leaves_its_target_alone(run_copy, tmp_path, name):
    victim = _link_to_victim(run_copy, name, tmp_path)
    before = snapshot_of(run_copy)
    with pytest.raises(SettingsError) as err:  # RunFolderError: the CLI prints it as one line, exit 2
        train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    assert (
        one_line(err.value)
        == f"{run_copy / name} is a symbolic link; a run folder's files are written only as regular files inside it"
    )
    assert victim.read_text() == VICTIM
    assert snapshot_of(run_copy) == before, "nothing written before the refusal"


def test_resume_refuses_a_symlinked_last_pth_it_reads_from(run_copy, tmp_path):
    victim = _link_to_victim(
        run_copy, "checkpoints/last.pth", tmp_path, as_copy_of=run_copy / "checkpoints" / "last.pth"
    )
    before = victim.read_bytes()
    with pytest.raises(SettingsError, match="last.pth is a symbolic link"):
        train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    assert victim.read_bytes() == before


def test_resume_refuses_a_checkpoints_folder_that_links_elsewhere(run_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (run_copy / "checkpoints").rename(elsewhere)
    (run_copy / "checkpoints").symlink_to(elsewhere)
    (elsewhere / ".last.pth.stale.tmp").write_text(VICTIM)  # what a resume cleans up first, were it to go in
    before = snapshot_of(elsewhere)
    with pytest.raises(SettingsError) as err:
        train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    assert one_line(err.value) == (
        f"{run_copy / 'checkpoints'} is a symbolic link; "
        "a run folder's checkpoints are written only in a real folder inside it"
    )
    assert snapshot_of(elsewhere) == before


def test_resume_refuses_an_events_file_hard_linked_to_a_user_file(run_copy, tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text(VICTIM)
    (run_copy / "events.jsonl").unlink()
    os.link(victim, run_copy / "events.jsonl")
    with pytest.raises(SettingsError, match="events.jsonl is a hard link shared with another file"):
        train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    assert victim.read_text() == VICTIM


def test_stale_temporaries_that_are_links_go_but_not_their_targets(run_copy, tmp_path):
    victim = tmp_path / "precious.bin"
    victim.write_text(VICTIM)
    (run_copy / "checkpoints" / ".last.pth.abc.tmp").symlink_to(victim)
    (run_copy / "checkpoints" / ".odd.tmp").mkdir()  # a folder named like a temporary stays
    _, final, _ = train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    assert isinstance(final, RunFinished), final
    assert victim.read_text() == VICTIM
    assert not (run_copy / "checkpoints" / ".last.pth.abc.tmp").is_symlink()
    assert (run_copy / "checkpoints" / ".odd.tmp").is_dir()


def test_a_link_made_in_the_middle_of_a_run_fails_it_and_is_not_followed(tmp_path):
    victim = tmp_path / "victim.pth"
    victim.write_text(VICTIM)

    def swap_last_for_a_link(event):
        if isinstance(event, CheckpointSaved) and event.kind == "last" and event.epoch == 1:
            Path(event.path).unlink()
            Path(event.path).symlink_to(victim)

    _, final, _ = train(make_settings(tmp_path / "runs", epochs=2), emit=swap_last_for_a_link)
    assert isinstance(final, RunFailed) and final.error_type == "CheckpointError"
    assert final.error.endswith(
        "last.pth is a symbolic link; a run folder's files are written only as regular files inside it"
    )
    assert victim.read_text() == VICTIM


def test_old_epoch_files_that_are_links_are_unlinked_not_followed(tmp_path):
    victim = tmp_path / "victim.pth"
    victim.write_text(VICTIM)

    def plant_a_link(event):
        if isinstance(event, CheckpointSaved) and event.kind == "epoch" and event.epoch == 1:
            Path(event.path).with_name("epoch_0.pth").symlink_to(victim)  # retention deletes it at the next epoch

    _, final, _ = train(make_settings(tmp_path / "runs", epochs=2), emit=plant_a_link)
    assert isinstance(final, RunFinished), final
    assert victim.read_text() == VICTIM
    assert sorted(p.name for p in (Path(final.run_dir) / "checkpoints").glob("epoch_*.pth")) == ["epoch_2.pth"]


def test_the_user_settings_file_is_still_written_through_its_link(tmp_path):
    """engine.settings.config.save_settings keeps following links (a dotfiles repository).

    Only run folders refuse them.
    """
    real = tmp_path / "dotfiles" / "settings.toml"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "settings.toml"
    link.symlink_to(real)
    engine.io.atomic.atomic_write(link, lambda fh: fh.write(b"new"))
    assert link.is_symlink() and real.read_text() == "new"
    with pytest.raises(engine.io.atomic.NotARegularFile):
        engine.io.atomic.atomic_write(link, lambda fh: fh.write(b"newer"), follow_symlinks=False)
    assert real.read_text() == "new"


# -- a full disk at each writer ---------------------------------------------------------------


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, FULL)


def _assert_failed_on_full_disk(final, earlier_epoch: int | None) -> None:
    assert isinstance(final, RunFailed), final
    assert FULL in final.error and "\n" not in final.error
    assert "PytorchStreamWriter" not in final.error and "enforce fail" not in final.error
    if earlier_epoch is not None:
        ck_dir = Path(final.run_dir) / "checkpoints"
        assert load_checkpoint(ck_dir / "last.pth")["epoch"] == earlier_epoch
        load_checkpoint(ck_dir / "best.pth")  # a bare state_dict, from the earlier epoch


def test_full_disk_when_setup_writes_settings_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(engine.runs.folder, "atomic_write", _enospc)
    with pytest.raises(SettingsError) as err:
        train(make_settings(tmp_path / "runs"))
    assert one_line(err.value) == f"cannot write {tmp_path / 'runs' / 'safe' / 'settings.toml'}: {FULL}"
    assert list((tmp_path / "runs").iterdir()) == [], "the folder of a run that never started is removed"


def test_full_disk_when_resume_rewrites_metrics(run_copy, tmp_path, monkeypatch):
    before = snapshot_of(run_copy)
    real = engine.runs.folder.atomic_write
    monkeypatch.setattr(
        engine.runs.folder,
        "atomic_write",
        lambda p, *a, **k: _enospc() if p.name == "metrics.jsonl" else real(p, *a, **k),
    )
    with pytest.raises(SettingsError, match=f"cannot write .*metrics.jsonl: {FULL}"):
        train(make_settings(tmp_path / "runs", epochs=2), resume_from=run_copy / "checkpoints" / "last.pth")
    after = snapshot_of(run_copy)
    assert (
        after["metrics.jsonl"] == before["metrics.jsonl"]
        and after["checkpoints/last.pth"] == before["checkpoints/last.pth"]
    )
    assert not is_locked(run_copy)


def _fail_line_writes(monkeypatch, file_name: str, after_epoch: int):
    """ENOSPC for every line written to file_name once `after_epoch` epochs are done; the count of faults met."""
    real = engine.runs.folder.write_all
    state = {"armed": False, "faults": 0}

    def write_all(fd, data):
        if state["armed"] and os.readlink(f"/proc/self/fd/{fd}").endswith(file_name):
            state["faults"] += 1
            raise OSError(errno.ENOSPC, FULL)
        return real(fd, data)

    def arm(event):
        if isinstance(event, EpochCompleted) and event.epoch == after_epoch:
            state["armed"] = True

    monkeypatch.setattr(engine.runs.folder, "write_all", write_all)
    return arm, state


@pytest.mark.parametrize("file_name", ["events.jsonl", "metrics.jsonl"])
def test_full_disk_when_a_line_is_recorded_fails_the_run_once(tmp_path, monkeypatch, file_name):
    arm, state = _fail_line_writes(monkeypatch, file_name, after_epoch=1)
    _, final, events = train(make_settings(tmp_path / "runs", epochs=3), emit=arm)
    _assert_failed_on_full_disk(final, earlier_epoch=None)
    assert final.error_type == "RunFolderError" and file_name in final.error
    assert events[-1] is final, "every listener still hears the failure"
    assert state["faults"] == 1, (
        "after the first failure the recorder writes nothing more (no second error hides the first)"
    )
    assert not is_locked(Path(final.run_dir))
    assert load_checkpoint(Path(final.run_dir) / "checkpoints" / "last.pth")["epoch"] in (1, 2)


def _torch_save_fails(monkeypatch, name: str, when):
    """The disk fills up while torch.save writes `name` (when `when(obj)`).

    Its temporary file takes 100 bytes, then ENOSPC.

    torch's zip writer turns that OSError into its own RuntimeError ("unexpected pos ...", "file write failed").
    """
    real_save, real_fdopen = ck.torch.save, engine.io.atomic.os.fdopen
    saving = {"obj": None}

    class FillsUp:
        def __init__(self, fh):
            self.fh, self.written, self.fails = fh, 0, None

        def write(self, data):
            if self.fails is None:  # torch.save has begun: the object is known
                self.fails = when(saving["obj"])
            if self.fails and self.written > 100:
                raise OSError(errno.ENOSPC, FULL)
            self.written += len(data)
            return self.fh.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

        def __getattr__(self, attr):
            return getattr(self.fh, attr)

    def fdopen(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        temporary = Path(os.readlink(f"/proc/self/fd/{fd}")).name  # atomic_write's .last.pth.XXXX.tmp
        return FillsUp(fh) if temporary.startswith(f".{name}.") else fh

    def save(obj, fh, *args, **kwargs):
        saving["obj"] = obj
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(engine.io.atomic.os, "fdopen", fdopen)
    monkeypatch.setattr(ck.torch, "save", save)


def _second_save_of(name: str):
    """A predicate on the saved object: true for epoch 2's save of `name` (best.pth holds no epoch: its second save)."""
    seen = {"best": 0}

    def second(obj) -> bool:
        if name == "best.pth":
            seen["best"] += 1
            return seen["best"] == 2
        return obj.get("epoch") == 2

    return second


@pytest.mark.parametrize("name", ["last.pth", "best.pth", "epoch_2.pth"])
def test_full_disk_when_a_checkpoint_is_saved_keeps_the_earlier_ones(tmp_path, monkeypatch, name):
    _torch_save_fails(monkeypatch, name, _second_save_of(name))
    _, final, _ = train(make_settings(tmp_path / "runs", epochs=3, lr=0.01))
    _assert_failed_on_full_disk(final, earlier_epoch=1)
    assert final.error_type == "CheckpointError" and name in final.error
    assert final.epoch == 1, "epoch 2 failed: one epoch completed (its end was never recorded)"
    assert not list((Path(final.run_dir) / "checkpoints").glob(".*.tmp")), "no temporary left behind"


def test_full_disk_at_the_stop_and_save(tmp_path, monkeypatch):
    control = RunControl()

    def stop_in_epoch_2(event):
        if isinstance(event, BatchProgressed) and event.epoch == 2 and not control.stop_requested:
            _torch_save_fails(monkeypatch, "last.pth", lambda obj: obj.get("batch", 0) > 0)
            control.stop("test")  # seen before the next batch: last.pth is saved with the position in the epoch

    _, final, _ = train(make_settings(tmp_path / "runs", epochs=3), emit=stop_in_epoch_2, control=control)
    _assert_failed_on_full_disk(final, earlier_epoch=1)


def test_the_recorder_never_raises_after_its_first_failure(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recorder = RunRecorder(run_dir)
    monkeypatch.setattr(engine.runs.folder, "write_all", _enospc)
    with pytest.raises(SettingsError, match=FULL):
        recorder.on_event(RunPaused(1, 0))
    recorder.on_event(RunResumed(1, 0))  # the disk is full: nothing more is tried
    recorder.close()
    recorder.close()


def test_a_torn_last_line_is_ended_before_the_next_one(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text('{"type": "RunStarted"}\n{"type": "Epo')  # a full disk cut this line
    recorder = RunRecorder(run_dir)
    recorder.on_event(RunPaused(1, 0))
    recorder.close()
    assert [e["type"] for e in read_jsonl(run_dir / "events.jsonl")] == ["RunStarted", "RunPaused"]


def test_atomic_save_reports_the_disk_not_torchs_zip_writer(tmp_path, monkeypatch):
    target = tmp_path / "last.pth"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, target)
    _torch_save_fails(monkeypatch, "last.pth", lambda obj: True)
    with pytest.raises(CheckpointError) as err:
        atomic_save({"epoch": 2, "w": torch.ones(100_000)}, target)
    assert one_line(err.value) == f"cannot save {target}: {FULL}; the previous last.pth, if any, is intact"
    assert load_checkpoint(target)["epoch"] == 1


# -- a resume whose settings no longer fit its checkpoint ---------------------------------------


@pytest.mark.parametrize(
    "change, setting",
    [
        ({"optimizer": "sgd"}, "training.optimizer"),
        ({"optimizer": "adamw"}, "training.optimizer"),
        ({"scheduler": "onecycle"}, "training.scheduler"),
        ({"scheduler": "step"}, "training.scheduler"),
        ({"precision": "bf16"}, "training.precision"),
        ({"accel": "off"}, "training.accel"),
    ],
)
def test_a_resume_with_settings_that_do_not_fit_is_refused_before_any_write(run_copy, tmp_path, change, setting):
    before = snapshot_of(run_copy)
    saved = load_checkpoint(run_copy / "checkpoints" / "last.pth")["settings"]
    settings = from_dict({**saved, "training": {**saved["training"], "epochs": 2, **change}})
    with pytest.raises(CheckpointError) as err:
        train(settings, resume_from=run_copy / "checkpoints" / "last.pth")
    assert f"trained with {setting} = " in one_line(err.value)
    assert snapshot_of(run_copy) == before


@pytest.mark.parametrize("model", [{"hidden": [8]}, {"name": "cnn"}])
def test_a_resume_with_another_model_is_refused_before_any_write(run_copy, tmp_path, model):
    before = snapshot_of(run_copy)
    saved = load_checkpoint(run_copy / "checkpoints" / "last.pth")["settings"]
    settings = from_dict(
        {**saved, "model": {**saved["model"], **model}, "training": {**saved["training"], "epochs": 2}}
    )
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train(settings, resume_from=run_copy / "checkpoints" / "last.pth")
    assert snapshot_of(run_copy) == before
