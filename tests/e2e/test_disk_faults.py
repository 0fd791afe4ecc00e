"""Real file-system faults under the real CLI: a read-only runs folder, a full disk, a symlink in a downloaded
run folder, a resume that no longer fits, and a reader that leaves early (`| head -1`).

The read-only folder is a read-only bind mount and the full disk a small tmpfs (chmod stops nobody when the
tests run as root); where `mount` is not permitted the test is skipped and says so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runs.checkpoints import load_checkpoint
from engine.settings.config import from_dict
from engine.events import BatchProgressed, EpochCompleted, RunFailed, RunStarted
from engine.runs.folder import is_locked, read_jsonl
from engine.api import Run
from engine.training.control import RunControl

pytestmark = pytest.mark.slow

FULL = "No space left on device"
TINY = (
    "--set",
    "training.epochs=1",
    "--set",
    "device.device='cpu'",
    "--set",
    "device.threads=1",
    "--set",
    "model.hidden=[16]",
)


def _env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONUNBUFFERED")
    }  # as users run it: buffered
    return env


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=_env()
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            f"mount {' '.join(args)} is not permitted here ({done.stderr.strip() or done.returncode}): "
            "no real read-only or full disk to test on"
        )


@pytest.fixture
def mounts():
    """mount(args...) with each mount undone at the end."""
    made: list[Path] = []

    def mount(*args: str) -> Path:
        _mount(*args)
        made.append(Path(args[-1]))
        return Path(args[-1])

    yield mount
    for target in reversed(made):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def read_only_view(mounts, source: Path, view: Path) -> Path:
    view.mkdir()
    mounts("--bind", str(source), str(view))
    mounts("-o", "remount,bind,ro", str(view))
    with pytest.raises(OSError) as err:
        (view / "probe").write_text("x")
    assert err.value.errno == errno.EROFS
    return view


def small_disk(mounts, path: Path, size: str) -> Path:
    path.mkdir()
    return mounts("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))


def fill(disk: Path) -> None:
    """Take every free byte of `disk` (down to the last page), as another process writing a big file would."""
    with open(disk / f"filler-{len(list(disk.glob('filler-*')))}", "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    assert os.statvfs(disk).f_bavail == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 1-epoch run folder (tiny MLP), made by the CLI; tests copy it."""
    cwd = tmp_path_factory.mktemp("trained")
    result = cli(cwd, "run", *TINY)
    assert result.returncode == 0, result.stderr
    return cwd / "runs" / "digits-mlp"


# -- a read-only runs folder ----------------------------------------------------------------


def test_a_read_only_runs_folder_lists_and_evaluates_but_refuses_training(trained, tmp_path, mounts):
    source = tmp_path / "source"
    shutil.copytree(trained.parent, source / "runs")
    view = read_only_view(mounts, source, tmp_path / "view")
    run = view / "runs" / "digits-mlp"

    listed = cli(tmp_path, "checkpoints", "--json", str(view / "runs"))
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    (info,) = json.loads(listed.stdout)
    assert info["status"] == "completed" and [c["kind"] for c in info["checkpoints"]] == ["best", "last"]
    assert all(c["error"] is None for c in info["checkpoints"])
    assert not is_locked(run)

    evaluated = cli(tmp_path, "eval", "--json", str(run))
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0.0 <= json.loads(evaluated.stdout)["accuracy"] <= 1.0

    new_run = cli(tmp_path, "run", *TINY, "--set", f"run.runs_dir={str(view / 'runs')!r}")
    assert new_run.returncode == 2
    assert "Read-only file system" in one_error_line(new_run)

    resumed = cli(tmp_path, "run", "--resume", str(run), "--set", "training.epochs=2")
    assert resumed.returncode == 2
    assert (
        one_error_line(resumed) == f"trainconsole: error: {run}: cannot write in this run folder: Read-only file system"
    )


# -- a full disk ----------------------------------------------------------------------------


def test_a_disk_full_before_the_run_is_one_line_and_leaves_no_folder(tmp_path, mounts):
    disk = small_disk(mounts, tmp_path / "disk", "64k")
    (disk / "runs").mkdir()
    fill(disk)
    result = cli(tmp_path, "run", *TINY, "--set", f"run.runs_dir={str(disk / 'runs')!r}")
    assert result.returncode == 2
    assert one_error_line(result).endswith(f"settings.toml: {FULL}")
    assert list((disk / "runs").iterdir()) == []


def test_a_disk_too_small_for_the_first_checkpoint_fails_the_run_in_one_line(tmp_path, mounts):
    disk = small_disk(mounts, tmp_path / "disk", "32k")  # settings and event lines fit, last.pth (40 KB) does not
    result = cli(tmp_path, "run", *TINY, "--set", f"run.runs_dir={str(disk / 'runs')!r}")
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert line.startswith("trainconsole: training failed at epoch 1: ")
    assert FULL in line and "PytorchStreamWriter" not in line and "enforce fail" not in line
    (run_dir,) = (disk / "runs").iterdir()
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "the half-written temporary is removed"
    assert not is_locked(run_dir)


def tiny_settings(runs_dir: Path, epochs: int = 3):
    return from_dict(
        {
            "run": {"runs_dir": str(runs_dir), "name": "full", "seed": 1},
            "data": {"dataset": "digits", "batch_size": 128},
            "model": {"name": "mlp", "hidden": [16]},
            "training": {"epochs": epochs, "lr": 0.01},
            "checkpoints": {"every": 1, "keep": 1},
            "device": {"device": "cpu", "threads": 1},
        }
    )


def train_filling_the_disk_when(disk: Path, moment, control: RunControl | None = None):
    """Train on `disk`, filling it when `moment(event, control)` says so; the events heard and the final one."""
    heard = []

    def listen(event):
        heard.append(event)
        if moment(event, control):
            fill(disk)

    final = Run(tiny_settings(disk / "runs"), listen, control, set_threads=False).run()  # must not raise
    return heard, final


def _stop_in_epoch_2(event, control: RunControl) -> bool:
    """Stop at epoch 2's first progress tick: the disk fills, then last.pth is saved with the position in the epoch."""
    if isinstance(event, BatchProgressed) and event.epoch == 2 and not control.stop_requested:
        control.stop("test")
        return True
    return False


MOMENTS = {
    "right after RunStarted": lambda event, control: isinstance(event, RunStarted),
    "after epoch 1": lambda event, control: isinstance(event, EpochCompleted) and event.epoch == 1,
    "at the stop-and-save in epoch 2": _stop_in_epoch_2,
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_disk_filled_at_a_moment_fails_the_run_and_keeps_earlier_checkpoints(tmp_path, mounts, moment):
    disk = small_disk(mounts, tmp_path / "disk", "4m")
    heard, final = train_filling_the_disk_when(disk, MOMENTS[moment], RunControl())
    assert isinstance(final, RunFailed) and heard[-1] is final, final
    assert FULL in final.error and "\n" not in final.error and "PytorchStreamWriter" not in final.error
    run_dir = Path(final.run_dir)
    assert not is_locked(run_dir)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    if moment != "right after RunStarted":
        assert load_checkpoint(run_dir / "checkpoints" / "last.pth")["epoch"] == 1
        load_checkpoint(run_dir / "checkpoints" / "best.pth")
    assert all(isinstance(e, dict) for e in read_jsonl(run_dir / "events.jsonl")), "every recorded line is whole"


# -- a symlink in a downloaded run folder, a resume that no longer fits ----------------------


def test_resuming_a_run_folder_with_a_symlinked_metrics_file_is_refused(trained, tmp_path):
    run = tmp_path / "downloaded" / "digits-mlp"
    shutil.copytree(trained, run)
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH\n")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    result = cli(tmp_path, "run", "--resume", str(run), "--set", "training.epochs=2")
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"trainconsole: error: {run / 'metrics.jsonl'} is a symbolic link; "
        "a run folder's files are written only as regular files inside it"
    )
    assert victim.read_text() == "export PATH\n"


@pytest.mark.parametrize(
    "change", ["training.optimizer='sgd'", "training.scheduler='onecycle'", "training.accel=off"]
)
def test_a_resume_that_no_longer_fits_is_one_line_and_writes_nothing(trained, tmp_path, change):
    cwd = tmp_path / "cwd"
    shutil.copytree(trained.parent, cwd / "runs")
    before = {p: p.read_bytes() for p in (cwd / "runs").rglob("*") if p.is_file()}
    result = cli(cwd, "run", "--resume", "last", "--set", "training.epochs=2", "--set", change)
    assert result.returncode == 2
    assert f"trained with {change.split('=')[0]} = " in one_error_line(result)
    assert {p: p.read_bytes() for p in (cwd / "runs").rglob("*") if p.is_file()} == before


# -- a reader that leaves early ---------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_a_reader_that_leaves_after_one_line_does_not_stop_the_run(tmp_path, json_output):
    """`trainconsole run | head -1`: the run goes on to the end and is recorded; exit 0 and no BrokenPipeError noise."""
    args = [sys.executable, "-m", "engine", "run", *TINY, "--set", "training.epochs=3"] + (
        ["--json"] if json_output else []
    )
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=180) == 0, stderr
    assert stderr == ""
    assert first.startswith('{"type": "RunStarted"' if json_output else "Run folder : ")
    (run_dir,) = (tmp_path / "runs").iterdir()
    events = list(read_jsonl(run_dir / "events.jsonl"))
    assert events[-1]["type"] == "RunFinished" and events[-1]["status"] == "completed"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
