"""Signals and kills against the real `trainconsole run` process.

Ctrl-C, SIGTERM and SIGHUP stop at a batch boundary with last.pth saved and
exit 130; SIGKILL at random moments never leaves a checkpoint that does not
load, and `--resume` picks the run up each time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.runs.folder import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
LONG_RUN = [
    "--set",
    "data.batch_size=8",
    "--set",
    "training.epochs=500",
    "--set",
    "device.threads=1",
    "--set",
    "model.hidden=[128, 64]",
    "--set",
    "checkpoints.every=1",
    "--set",
    "checkpoints.keep=2",
]


def start(tmp_path: Path, *args: str, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    runs = tmp_path / "runs"
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--set", f'run.runs_dir="{runs}"', *args],
        cwd=tmp_path,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"trainconsole exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def lines(path: Path) -> int:
    return len(list(read_jsonl(path)))


def all_checkpoints_load(run_dir: Path) -> list[str]:
    names = []
    for p in sorted((run_dir / "checkpoints").glob("*.pth")):
        torch.load(p, weights_only=True)
        names.append(p.name)
    return names


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signals_save_last_and_exit_130(tmp_path, signum):
    proc = start(tmp_path, *LONG_RUN, stdout=subprocess.PIPE)
    run_dir = tmp_path / "runs" / "digits-mlp"
    wait_for(lambda: lines(run_dir / "metrics.jsonl") >= 1, proc)
    if signum == signal.SIGHUP:
        proc.stdout.close()  # the terminal is gone: every later write fails, as after a dropped SSH session
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert last["epoch"] >= 1
    final = list(read_jsonl(run_dir / "events.jsonl"))[-1]
    assert (final["type"], final["status"]) == ("RunFinished", "stopped")
    assert signal.Signals(signum).name in final["reason"]

    if signum == signal.SIGTERM:  # --resume continues the run in its own folder
        target = last["epoch"] + 1
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "run",
                "--resume",
                "last",
                "--set",
                f'run.runs_dir="{tmp_path / "runs"}"',
                "--set",
                f"training.epochs={target}",
            ],
            cwd=tmp_path,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == list(range(1, target + 1))
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["digits-mlp"]


def torn_temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of atomic saves (engine.io.atomic) left in checkpoints/: a kill landed during a save."""
    return list((run_dir / "checkpoints").glob(".*.tmp"))


def kill_during_a_save(run_dir: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """SIGKILL the moment a temporary checkpoint file appears (polled without sleeping: a save lasts milliseconds)."""
    folder, deadline = run_dir / "checkpoints", time.monotonic() + timeout
    while not any(entry.name.endswith(".tmp") for entry in os.scandir(folder)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no save seen in progress (exit {proc.returncode})")
    proc.kill()


def test_repeated_kill_9_never_breaks_a_checkpoint(tmp_path, capsys):
    rng = random.Random(1234)
    run_dir = tmp_path / "runs" / "digits-mlp"
    kills, torn_by_kills = 0, 0
    for attempt in range(15):
        during_save = attempt >= 5  # after 5 kills at random moments, kills aimed at saves until one lands inside one
        if during_save and torn_by_kills:
            break
        if attempt == 0:
            proc = start(tmp_path, *LONG_RUN)
            wait_for(lambda: lines(run_dir / "metrics.jsonl") >= 1, proc)
        else:
            torn, started = torn_temporaries(run_dir), lines(run_dir / "events.jsonl")
            proc = start(tmp_path, "--resume", str(run_dir))
            wait_for(lambda: lines(run_dir / "events.jsonl") > started, proc)  # training (RunStarted written)
            assert not any(path.exists() for path in torn), "the resume removes the temporaries a kill left"
        if during_save:
            kill_during_a_save(run_dir, proc)
        else:
            time.sleep(rng.uniform(0.0, 1.5))
            proc.kill()
        proc.communicate()
        kills += 1
        assert proc.returncode == -signal.SIGKILL
        torn_by_kills += len(torn_temporaries(run_dir))
        names = all_checkpoints_load(run_dir)
        assert {"best.pth", "last.pth"} <= set(names), names
    assert torn_by_kills >= 1, f"none of {kills} kills landed while a checkpoint was being saved"

    assert main(["checkpoints", str(tmp_path / "runs"), "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["status"] == "interrupted"
    assert all(c["error"] is None for c in run["checkpoints"])
    epochs = [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert epochs == list(range(1, len(epochs) + 1))

    last_epoch = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)["epoch"]
    final = start(tmp_path, "--resume", str(run_dir), "--set", f"training.epochs={last_epoch + 1}")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert list(read_jsonl(run_dir / "events.jsonl"))[-1]["status"] == "completed"
    print(f"{kills} kills survived, {torn_by_kills} torn temporaries found and cleaned, final epoch {last_epoch + 1}")
