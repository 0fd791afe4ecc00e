"""Data-parallel runs through torchrun, end to end: real processes talking gloo over the loopback address.

Two processes at batch size B train exactly as one process at 2B (their batches together are its batch,
and DDP averages the gradients), so their metrics agree to float noise; one run folder, written by rank 0
alone, with plain state_dict checkpoints; a stop, a signal or a NaN on one rank ends every rank together;
a run moves between 2 processes and 1 through its checkpoints; two torchrun launchers make a two-node run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_watch import exited, locked, read_jsonl, wait_until

pytestmark = pytest.mark.slow

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# 960 training samples: a multiple of 2 x 16, so the two ranks' batches are exactly the one process's
SETTINGS = """\
[run]
runs_dir = "runs"
name = "{name}"
seed = 3
[device]
device = "cpu"
threads = 1
[data]
dataset = "{dataset}"
batch_size = {batch_size}
options = {options}
[model]
hidden = [32]
dropout = 0.0
[training]
epochs = {epochs}
"""
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc")
# the user's dataset of the NaN test: rank 1's copy of the data holds a NaN, rank 0's does not
NAN_ON_RANK_1 = """\
import os
import torch
from torch.utils.data import TensorDataset

def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, 8, generator=g)
    y = (x[:, 0] > 0).long()
    if os.environ.get("RANK") == "1":
        x[:, 3] = float("nan")
    return TensorDataset(x, y)
"""


def workdir(tmp_path: Path, *, name="ddp", batch_size=16, epochs=3, dataset="synthetic", options=None) -> Path:
    options = options or "{samples = 1200, features = 12}"
    text = SETTINGS.format(name=name, batch_size=batch_size, epochs=epochs, dataset=dataset, options=options)
    (tmp_path / "settings.toml").write_text(text)
    return tmp_path


def trainconsole(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRAINCONSOLE), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def metrics(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "metrics.jsonl")


def events(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "events.jsonl")


def assert_same_training(a: list[dict], b: list[dict]) -> None:
    """The same epochs, metric by metric, up to float32 noise (sums of different groupings)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for key in METRICS:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5), (ra["epoch"], key, ra[key], rb[key])


def test_two_processes_train_as_one_at_twice_the_batch_and_write_one_run(tmp_path):
    work = workdir(tmp_path)
    autograd = ("--set", "training.accel=off")  # through DistributedDataParallel (the fused step: below)
    two = trainconsole(work, "run", "--processes", "2", *autograd)
    assert two.returncode == 0, two.stderr
    one = trainconsole(work, "run", "--set", "data.batch_size=32", "--set", "run.name=one", *autograd)
    assert one.returncode == 0, one.stderr

    assert sorted(p.name for p in (work / "runs").iterdir()) == ["ddp", "one"]  # one folder for both ranks
    run_dir = work / "runs" / "ddp"
    assert_same_training(metrics(run_dir), metrics(work / "runs" / "one"))
    started = [e for e in events(run_dir) if e["type"] == "RunStarted"]
    assert len(started) == 1 and started[0]["processes"] == 2
    assert [e["type"] for e in events(run_dir)].count("RunFinished") == 1
    # rank 0 alone prints: one set of lines, naming the processes
    assert two.stdout.count("Epoch [1/3]") == 1 and "2 processes (DDP)" in two.stdout
    assert "batch_size 16 per process" in two.stdout and "Step       : autograd" in two.stdout
    assert "exitcode" not in two.stderr and "Traceback" not in two.stderr, two.stderr

    # the checkpoints hold the plain model: the chapter's own code loads them, and so does a 1-process eval
    best = torch.load(run_dir / "checkpoints" / "best.pth", weights_only=True)
    assert not [k for k in best if k.startswith("module.")], list(best)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    assert len(best) == len(model.state_dict())
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert last["world_size"] == 2 and not [k for k in last["model_state_dict"] if k.startswith("module.")]
    evaluated = trainconsole(work, "eval", str(run_dir), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["loss"] == pytest.approx(min(r["val_loss"] for r in metrics(run_dir)), rel=1e-4)


def test_a_one_process_checkpoint_goes_on_in_two_processes(tmp_path):
    work = workdir(tmp_path, epochs=2, batch_size=32)
    first = trainconsole(work, "run")
    assert first.returncode == 0, first.stderr
    run_dir = work / "runs" / "ddp"
    # a 1-process checkpoint resumes under 2 processes at 16 each: the same training as one process going on
    resumed = trainconsole(
        work, "run", "--resume", "last", "--processes", "2", "--set", "data.batch_size=16", "--set", "training.epochs=3"
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = trainconsole(work, "run", "--set", "run.name=straight", "--set", "training.epochs=3")
    assert straight.returncode == 0, straight.stderr
    assert_same_training(metrics(run_dir), metrics(work / "runs" / "straight"))


def test_sigterm_to_the_launcher_stops_every_rank_and_saves_once(tmp_path):
    # 2,400 steps an epoch: the signal, sent once epoch 2's progress is recorded (at most every second), lands
    # mid-epoch, not at the epoch's end (where no mid-epoch last.pth is written)
    work = workdir(tmp_path, epochs=500, batch_size=2, options="{samples = 12000, features = 12}")
    launcher = subprocess.Popen(
        [str(TRAINCONSOLE), "run", "--processes", "2"],
        cwd=work,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run_dir = work / "runs" / "ddp"

    def in_epoch_2() -> bool:
        return any(e["type"] == "BatchProgressed" and e["epoch"] == 2 for e in events(run_dir))

    try:
        wait_until(in_epoch_2, "epoch 2's progress", timeout=120)
        launcher.send_signal(signal.SIGTERM)
        out, err = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 130, err.decode()
    recorded = events(run_dir)
    assert (recorded[-1]["type"], recorded[-1]["status"]) == ("RunFinished", "stopped")
    last_epoch = max(i for i, e in enumerate(recorded) if e["type"] == "EpochCompleted")
    saved = [e["kind"] for e in recorded[last_epoch:] if e["type"] == "CheckpointSaved"]
    assert saved == ["last"]  # the stop's last.pth, saved once, by rank 0
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert last["batch"] > 0 and last["batch"] % 8 == 0  # where the ranks agreed, mid-epoch
    assert last["partial"]["seen"] == 2 * 2 * last["batch"]  # both ranks' samples, counted once
    assert b"Run stopped: SIGTERM received" in out and out.count(b"Run stopped") == 1
    assert not locked(run_dir)

    # one process takes it on: that mid-epoch position has no match at another shard size, so the epoch restarts
    epochs = last["epoch"] + 1
    resumed = trainconsole(work, "run", "--resume", "last", "--processes", "1", "--set", f"training.epochs={epochs}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"batch {last['batch']} of epoch {epochs} with 2 processes" in resumed.stdout
    assert f"epoch {epochs} starts again from its beginning" in resumed.stdout
    assert [r["epoch"] for r in metrics(run_dir)] == list(range(1, epochs + 1))


def test_a_stop_sent_to_a_detached_run_reaches_both_ranks(tmp_path):
    work = workdir(tmp_path, epochs=500, batch_size=2, options="{samples = 4000, features = 12}")
    started = trainconsole(work, "run", "--detach", "--json", "--processes", "2")
    assert started.returncode == 0, started.stderr
    facts = json.loads(started.stdout)
    run_dir, pid = work / facts["run_dir"], facts["pid"]
    try:
        wait_until(lambda: metrics(run_dir), "a first epoch of the detached run", timeout=120)
        listed = trainconsole(work, "checkpoints", "runs", "--json")
        assert [r["status"] for r in json.loads(listed.stdout)] == ["running"], listed.stdout
        # pause and resume reach both ranks: rank 1 waits with rank 0, in step, and both go on
        assert trainconsole(work, "pause", str(run_dir)).returncode == 0
        paused = wait_until(lambda: [e for e in events(run_dir) if e["type"] == "RunPaused"], "the pause")[0]
        assert trainconsole(work, "resume", str(run_dir)).returncode == 0
        wait_until(lambda: [e for e in events(run_dir) if e["type"] == "RunResumed"], "the run to resume")
        wait_until(lambda: len(metrics(run_dir)) > paused["epoch"], "an epoch after the pause", timeout=120)
        stop = trainconsole(work, "stop", str(run_dir))
        assert stop.returncode == 0, stop.stderr
        waited = trainconsole(work, "wait", str(run_dir))
        assert waited.returncode == 130, waited.stderr
        wait_until(lambda: exited(pid), "the launcher to exit", timeout=60)
    finally:
        if not exited(pid):
            os.killpg(pid, signal.SIGKILL)
    final = events(run_dir)[-1]
    assert (final["type"], final["status"]) == ("RunFinished", "stopped") and "trainconsole stop" in final["reason"]
    assert torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)["batch"] > 0
    log = (run_dir / "output.log").read_text()
    assert log.count("Run stopped") == 1 and "exitcode" not in log, log


def test_a_nan_on_one_rank_stops_both(tmp_path):
    work = workdir(tmp_path, dataset="nanrank:make", epochs=50, batch_size=8, options="{}")
    (work / "nanrank.py").write_text(NAN_ON_RANK_1)
    done = trainconsole(work, "run", "--processes", "2", "--set", "training.stop_on_nan=true")
    assert done.returncode == 1, done.stderr
    run_dir = work / "runs" / "ddp"
    final = events(run_dir)[-1]
    assert (final["type"], final["status"]) == ("RunFinished", "nan"), final
    assert len(metrics(run_dir)) == 1  # the first epoch, ended at the first agreement point on both ranks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_the_loopback_address(tmp_path):
    """Two torchrun launchers, one per "node", meeting at a static rendezvous on 127.0.0.1."""
    work = workdir(tmp_path)
    port = free_port()

    def node(rank: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={rank}"]
        command += ["--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}"]
        command += ["-m", "engine", "run", "-c", "settings.toml"]
        return subprocess.Popen(command, cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    nodes = [node(0), node(1)]
    try:
        outputs = [n.communicate(timeout=240) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    assert [n.returncode for n in nodes] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    assert b"Epoch [3/3]" in outputs[0][0] and b"Epoch" not in outputs[1][0]  # the second node's rank prints nothing
    assert b"fused MLP step (backward written out, no autograd), gradients averaged" in outputs[0][0]
    one = trainconsole(work, "run", "--set", "data.batch_size=32", "--set", "run.name=one")
    assert one.returncode == 0, one.stderr
    assert_same_training(metrics(work / "runs" / "ddp"), metrics(work / "runs" / "one"))


def test_a_split_too_small_for_the_processes_is_one_line_before_anything_starts(tmp_path):
    # 24 training samples: each of 2 processes at batch 16 would have less than a batch
    work = workdir(tmp_path, options="{samples = 30, features = 12}")
    done = trainconsole(work, "run", "--processes", "2")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "24 training samples are too few for 2 processes" in done.stderr
    # one validation sample: the second process would validate none
    work = workdir(tmp_path, batch_size=4, options="{samples = 100, features = 12}")
    done = trainconsole(work, "run", "--processes", "2", "--set", "data.val_fraction=0.01")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "1 validation sample(s) are too few for 2 processes" in done.stderr
    assert not (work / "runs").exists()
