"""A rank of a 2-process run that dies or fails, in each phase: the other notices at once, and the run says who.

The user's model and dataset (hooks.py, the run's code folder) kill or fail one rank at a chosen point: at
set-up (building the data), mid-epoch (a training forward), in validation (an eval forward) and while rank 0
saves a checkpoint (its state_dict). Each test checks that the launcher exits non-zero within 10 s of the
kill, that the run folder records a RunFailed naming the rank (at set-up: that no folder is left), and that
nothing is left in /dev/shm or the temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_watch import locked, read_jsonl, wait_until

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
SHM = Path("/dev/shm")
SETTINGS = """\
[run]
runs_dir = "runs"
name = "ranks"
seed = 1
[device]
device = "cpu"
threads = 1
processes = 2
[data]
dataset = "hooks:dataset"
batch_size = 8
options = {{ rank = {setup_rank}, how = "{how}" }}
[model]
name = "hooks:Model"
options = {{ rank = {rank}, phase = "{phase}", at = {at}, how = "{how}" }}
[training]
epochs = {epochs}
"""
HOOKS = '''\
import os
import signal
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

RANK = int(os.environ.get("RANK", "0"))


def fail(how):
    Path("failed_at").write_text(repr(time.time()))
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError("boom")


def dataset(seed=0, rank=-1, how="kill"):
    if RANK == rank:
        fail(how)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, 8, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class Model(nn.Module):
    def __init__(self, in_features, num_classes, rank=-1, phase="", at=1, how="kill"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, 16), nn.ReLU(), nn.Linear(16, num_classes))
        self.mine, self.phase, self.at, self.how, self.calls = RANK == rank, phase, at, how, 0

    def forward(self, x):
        if self.mine and self.phase == ("train" if self.training else "validation"):
            self.calls += 1
            if self.calls == self.at:
                fail(self.how)
        return self.net(x)

    def state_dict(self, *args, **kwargs):
        if self.mine and self.phase == "save":
            fail(self.how)
        return super().state_dict(*args, **kwargs)
'''


def shm_entries() -> set[str]:
    return set(os.listdir(SHM)) if SHM.is_dir() else set()


def run_with_a_failure(tmp_path: Path, *, phase="", rank=-1, setup_rank=-1, at=1, how="kill", bare=False):
    """The 2-process run, to its end: (exit code, seconds from the failure to the exit, run folder, stderr)."""
    text = SETTINGS.format(setup_rank=setup_rank, rank=rank, phase=phase, at=at, how=how, epochs=3)
    (tmp_path / "settings.toml").write_text(text)
    (tmp_path / "hooks.py").write_text(HOOKS)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    if bare:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        command += ["-m", "engine", "run"]
    else:
        command = [str(TRAINCONSOLE), "run"]
    shm_before = shm_entries()
    with open(tmp_path / "stderr", "wb") as err:
        launcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            code = launcher.wait(timeout=180)
        finally:
            launcher.kill()
    ended = time.time()
    failed_at = float((tmp_path / "failed_at").read_text())
    # nothing of ours in the temporary folder or in /dev/shm; torch's own cache folder (torchinductor_USER, shared
    # by every torch program) may be there, and a bare torchrun keeps its log folder there; another program's
    # passing entries in /dev/shm are waited out
    theirs = ("torchinductor_", "torchelastic_") if bare else ("torchinductor_",)
    ours = [p.name for p in temp.iterdir() if not p.name.startswith(theirs)]
    assert ours == [], ours
    wait_until(lambda: not (shm_entries() - shm_before), "no new entries in /dev/shm", timeout=30)
    print(f"{phase or 'set-up'}, rank {max(rank, setup_rank)}: exit {code} {ended - failed_at:.2f} s after the failure")
    return code, ended - failed_at, tmp_path / "runs" / "ranks", (tmp_path / "stderr").read_text()


def recorded_failure(run_dir: Path) -> str:
    final = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] in ("RunFinished", "RunFailed")][-1]
    assert final["type"] == "RunFailed", final
    assert not locked(run_dir)
    return final["error"]


def listed_status(tmp_path: Path) -> str:
    import json

    listed = subprocess.run(
        [str(TRAINCONSOLE), "checkpoints", "runs", "--json"], cwd=tmp_path, capture_output=True, text=True
    )
    return json.loads(listed.stdout)[0]["status"]


def test_a_rank_killed_at_set_up(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, setup_rank=1)
    assert code == 1 and seconds < 10, (code, seconds, err)
    # rank 0 met the death in DDP's first broadcast, before it made the run folder: a run that never started
    # leaves none, as in one process; rank 0's line and the launcher's name the rank
    assert not run_dir.exists()
    assert "trainconsole: error: process 1 of 2 died" in err
    assert "process 1 of 2 died (killed by signal 9: SIGKILL)" in err, err


def test_an_error_at_set_up_on_rank_1_is_one_line_of_rank_0(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, setup_rank=1, how="raise")
    assert code == 2 and seconds < 10, (code, seconds, err)
    said = "trainconsole: error: process 1 of 2: data.dataset: dataset(seed, rank, how) raised RuntimeError: boom"
    assert err == said + "\n"  # one line, and no hang: before DDP's first collective the ranks agree on set-up
    assert not run_dir.exists()


def test_a_rank_killed_mid_epoch(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, phase="train", rank=1, at=30)
    assert code == 1 and seconds < 10, (code, seconds, err)
    assert "process 1 of 2 died" in recorded_failure(run_dir)
    assert "process 1 of 2 died (killed by signal 9: SIGKILL)" in err, err
    assert "Connection closed" not in err and "Traceback" not in err, err


def test_rank_0_killed_in_validation_is_recorded_by_rank_1(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, phase="validation", rank=0, at=2)
    assert code == 1 and seconds < 10, (code, seconds, err)
    assert "process 0 of 2 died" in recorded_failure(run_dir)
    assert listed_status(tmp_path) == "failed"


def test_rank_0_killed_saving_a_checkpoint(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, phase="save", rank=0)
    assert code == 1 and seconds < 10, (code, seconds, err)
    assert "process 0 of 2 died" in recorded_failure(run_dir)


def test_an_error_on_rank_1_is_recorded_with_its_own_text(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, phase="train", rank=1, at=30, how="raise")
    assert code == 1 and seconds < 10, (code, seconds, err)
    assert "process 1 of 2 failed: RuntimeError: boom" in recorded_failure(run_dir)
    assert "process 1 of 2 failed: RuntimeError: boom" in err and "Connection closed" not in err, err


def test_under_a_bare_torchrun_too(tmp_path):
    code, seconds, run_dir, err = run_with_a_failure(tmp_path, phase="train", rank=1, at=30, bare=True)
    assert code != 0 and seconds < 10, (code, seconds, err)
    assert "process 1 of 2 died" in recorded_failure(run_dir)
