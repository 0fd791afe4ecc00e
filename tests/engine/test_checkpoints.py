"""What the checkpoint files hold, how they are written and read, and the chapter's own code on them."""

from __future__ import annotations

import errno
import os
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
import torch.optim as optim

import engine.runs.checkpoints as ck
from engine.runs.checkpoints import CheckpointError, atomic_save, list_runs, load_checkpoint, load_weights
from engine.settings.config import from_dict
from engine.events import RunFailed
from engine.models.networks import MLP
from engine.api import Run
from chapter import ReseauMNIST

CHAPTER_KEYS = {"epoch", "model_state_dict", "optimizer_state_dict", "train_loss", "val_loss", "val_acc"}


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Small models train faster, and identically run after run, on one thread."""


def make_settings(tmp_path: Path, **sections):
    data = {
        "run": {"runs_dir": str(tmp_path / "runs"), "name": "ck", "seed": 2},
        "data": {"dataset": "synthetic", "batch_size": 64, "options": {"samples": 600}},
        "model": {"hidden": [16]},
        "training": {"epochs": 2, "scheduler": "step", "step_size": 1},
        "device": {"device": "cpu"},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return from_dict(data)


def train(settings, resume_from=None):
    events = []
    trainer = Run(settings, events.append, resume_from=resume_from, set_threads=False)
    final = trainer.run()
    return trainer, final, events


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    trainer, final, _ = train(
        make_settings(tmp_path_factory.mktemp("run"), checkpoints={"every": 1, "keep": 2}, training={"epochs": 4})
    )
    assert final.status == "completed"
    return trainer.run_dir


# -- contents -----------------------------------------------------------------


def test_full_checkpoint_is_the_chapter_dict_and_more_all_plain(finished_run):
    last = torch.load(finished_run / "checkpoints" / "last.pth", weights_only=True)  # tensors and plain types only
    assert CHAPTER_KEYS <= set(last)
    assert {
        "scheduler_state_dict",
        "scaler_state_dict",
        "rng",
        "history",
        "settings",
        "format_version",
        "best",
        "batch",
    } <= set(last)
    assert last["epoch"] == 4 and last["format_version"] == ck.FORMAT_VERSION
    assert last["val_loss"] == last["history"]["val_loss"][-1] and last["val_acc"] == last["history"]["val_acc"][-1]
    assert last["scheduler_state_dict"]["last_epoch"] == 4
    assert set(last["rng"]) >= {"torch", "python", "data", "data_epoch_start"}
    assert last["settings"]["training"]["epochs"] == 4


def test_best_is_a_bare_state_dict_of_the_best_epoch(finished_run):
    best = torch.load(finished_run / "checkpoints" / "best.pth", weights_only=True)
    assert set(best) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    last = load_checkpoint(finished_run / "checkpoints" / "last.pth")
    h = last["history"]
    best_epoch = min(range(len(h["val_loss"])), key=lambda i: h["val_loss"][i]) + 1
    assert last["best"]["epoch"] == best_epoch
    if best_epoch == 4:
        assert all(torch.equal(best[k], last["model_state_dict"][k]) for k in best)


def test_epoch_files_are_rotated_keeping_the_newest(finished_run):
    names = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    assert names == ["best.pth", "epoch_3.pth", "epoch_4.pth", "last.pth"]
    assert load_checkpoint(finished_run / "checkpoints" / "epoch_3.pth")["epoch"] == 3


def test_checkpoint_files_get_the_usual_mode(finished_run):
    mask = os.umask(0)
    os.umask(mask)
    assert (finished_run / "checkpoints" / "last.pth").stat().st_mode & 0o777 == 0o666 & ~mask


# -- the chapter's code on our files ------------------------------------------------------


def test_chapter_7_2_loads_our_best_and_last(tmp_path, monkeypatch):
    (tmp_path / "mnist_like_7_2.py").write_text(
        textwrap.dedent("""
        import torch
        from torch.utils.data import TensorDataset

        def make(seed=0):
            g = torch.Generator().manual_seed(seed)
            return TensorDataset(torch.rand(300, 1, 28, 28, generator=g), torch.randint(0, 10, (300,), generator=g))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = make_settings(
        tmp_path,
        data={"dataset": "mnist_like_7_2:make", "options": {}},
        model={"hidden": [256, 128], "dropout": 0.3},
        training={"epochs": 1, "scheduler": "none"},
    )
    trainer, final, _ = train(settings)
    assert final.status == "completed"
    ckdir = trainer.run_dir / "checkpoints"
    monkeypatch.chdir(ckdir)
    # chapter 7.2, as printed (torch.load's default is weights_only=True since torch 2.6)
    device = torch.device("cpu")
    model = ReseauMNIST()
    model.load_state_dict(torch.load("best.pth", map_location=device))
    model.to(device)
    model.eval()

    checkpoint = torch.load("last.pth", map_location=device)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    model.load_state_dict(checkpoint["model_state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    epoch_reprise = checkpoint["epoch"]
    assert epoch_reprise == 1
    assert sum(p.numel() for p in model.parameters()) == 235_146
    x = torch.randn(5, 1, 28, 28)
    trainer.model.eval()
    assert torch.allclose(model(x), trainer.model(x))
    assert optimizer.state_dict()["state"][0]["step"] == len(trainer.data.train)


# -- atomic saves and their failures --------------------------------------------------------


def test_failed_save_raises_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pth"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, target)
    before = target.read_bytes()

    def full_disk(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(CheckpointError) as err:
        atomic_save({"epoch": 2}, target)
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    assert target.read_bytes() == before and load_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temporary left behind

    def torch_writer_fails(obj, fh, *a, **k):  # how torch's zip writer reports a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\nmore")

    monkeypatch.setattr(ck.torch, "save", torch_writer_fails)
    with pytest.raises(CheckpointError, match="unexpected pos"):
        atomic_save({"epoch": 3}, target)
    assert target.read_bytes() == before


def test_save_refused_by_the_file_system_is_a_clear_error(tmp_path, monkeypatch):
    # A read-only folder, as a non-root user meets it (root, which runs CI here, writes anyway).
    import engine.io.atomic

    target = tmp_path / "last.pth"
    atomic_save({"epoch": 1}, target)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(engine.io.atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(CheckpointError, match="cannot save .*last.pth: Permission denied"):
        atomic_save({"epoch": 2}, target)
    assert load_checkpoint(target)["epoch"] == 1


def test_a_failed_save_during_training_fails_the_run_and_keeps_last(tmp_path, monkeypatch):
    real = ck.torch.save

    def second_epoch_fails(obj, fh, *a, **k):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, fh, *a, **k)

    monkeypatch.setattr(ck.torch, "save", second_epoch_fails)
    trainer, final, _ = train(make_settings(tmp_path))
    assert isinstance(final, RunFailed) and "No space left on device" in final.error and "last.pth" in final.error
    assert load_checkpoint(trainer.run_dir / "checkpoints" / "last.pth")["epoch"] == 1


def test_stale_temporaries_are_removed_on_resume_and_do_not_break_listing(finished_run, tmp_path):
    stray = finished_run / "checkpoints" / ".last.pth.abc123.tmp"
    stray.write_bytes(b"torn")
    runs = list_runs(finished_run.parent)
    assert [c.kind for c in runs[0].checkpoints] == ["best", "last", "epoch", "epoch"]
    assert all(c.error is None for c in runs[0].checkpoints)
    stray.unlink()


def test_stale_temporaries_go_when_a_run_resumes(finished_run, tmp_path):
    import shutil

    run_dir = tmp_path / "runs" / "ck"
    shutil.copytree(finished_run, run_dir)
    stray = run_dir / "checkpoints" / ".last.pth.abc123.tmp"
    stray.write_bytes(b"torn by a kill -9 during a save")
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pth")
    settings = (
        from_dict(saved["settings"]).replace("training.epochs", 5).replace("run.runs_dir", str(tmp_path / "runs"))
    )
    trainer = Run(settings, lambda e: None, resume_from=run_dir / "checkpoints" / "last.pth")
    trainer.setup()
    try:
        assert not stray.exists() and trainer.run_dir == run_dir
    finally:
        trainer.close()


# -- safe loading -----------------------------------------------------------------------


class Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    obj = {"model_state_dict": {"w": torch.ones(1)}, "x": Payload(str(marker))}
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "refused" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", "truncated"])
def test_truncated_or_foreign_files_are_one_line_errors(finished_run, tmp_path, content):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        whole = (finished_run / "checkpoints" / "last.pth").read_bytes()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_another_architecture_names_the_mismatched_keys(finished_run):
    state = load_checkpoint(finished_run / "checkpoints" / "best.pth")
    with pytest.raises(CheckpointError) as err:
        load_weights(MLP(20, 3, hidden=[32]), state, "best.pth")
    assert "fc1.weight (16, 20) vs (32, 20)" in str(err.value)
    with pytest.raises(CheckpointError, match="missing keys: fc3.weight, fc3.bias"):
        load_weights(MLP(20, 3, hidden=[16, 8]), state, "best.pth")


def test_listing_reads_epochs_metrics_and_status(finished_run):
    run = next(r for r in list_runs(finished_run.parent) if r.path == str(finished_run))
    assert (run.status, run.epochs, run.monitor) == ("completed", 4, "val_loss")
    by_name = {Path(c.path).name: c for c in run.checkpoints}
    assert by_name["last.pth"].epoch == 4 and by_name["epoch_3.pth"].epoch == 3
    assert by_name["best.pth"].is_best and by_name["best.pth"].epoch == run.best_epoch
    assert by_name["last.pth"].val_loss == load_checkpoint(finished_run / "checkpoints" / "last.pth")["val_loss"]
    assert all(c.size > 0 and c.mtime > 0 for c in run.checkpoints)


def test_a_checkpoints_folder_this_user_cannot_enter_hides_only_its_run(tmp_path, monkeypatch):
    for name in ("readable", "closed"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        atomic_save({"epoch": 1, "batch": 0}, tmp_path / name / "checkpoints" / "last.pth")
    real_is_file = Path.is_file

    def is_file(path: Path) -> bool:  # what stat says in a 0700 folder of another user (root passes any mode)
        if path.parent == tmp_path / "closed" / "checkpoints":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert [c.kind for c in runs["readable"].checkpoints] == ["last"]
    assert runs["closed"].checkpoints == [] and any("cannot read: Permission denied" in n for n in runs["closed"].notes)
