"""Run folders damaged by hand, through the real CLI: no traceback, the skipped lines named, exit non-zero only when
nothing is usable; a FIFO where a run's file (or a foreign log) should be is refused at once, never waited on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.events import Diagnostic

TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PROMPT_S = 60  # a command that waits on a FIFO never returns: this is the failure, not a measure of speed


def tc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TRAINCONSOLE), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=PROMPT_S
    )


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def epoch(n: int) -> EpochCompleted:
    return EpochCompleted(n, 2, 0.5, 0.6, 0.9, 0.8, 1e-3, 1.0, 100.0, Diagnostic("ok", ""), n == 1, None)


def run_folder(runs: Path, name: str = "hurt") -> Path:
    """A finished two-epoch run folder, as the recorder writes it."""
    run_dir = runs / name
    (run_dir / "checkpoints").mkdir(parents=True)
    events = [
        RunStarted(str(run_dir), {}, "cpu", "cpu", 10, 10, 10, 1, "", "fp32", 0, 2, 1),
        epoch(1),
        epoch(2),
        RunFinished("completed", "trained 2 epochs", 2, 1, 0.6, "val_loss", str(run_dir), 2.0),
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    rows = [e.metrics() for e in events if isinstance(e, EpochCompleted)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "settings.toml").write_text('[training]\nmonitor = "val_loss"\n')
    return run_dir


def damage(path: Path) -> None:
    """Garbage lines among the good ones: deep nesting, latin-1, a bool epoch, an overflowing number."""
    good = path.read_bytes().splitlines(keepends=True)
    bad = [b"[" * 100_000 + b"\n", "caf\xe9\n".encode("latin-1"), b'{"epoch": true}\n', b'{"epoch": 1, "lr": 1e308}\n']
    path.write_bytes(good[0] + bad[0] + bad[1] + b"".join(good[1:]) + bad[2] + bad[3])


def test_checkpoints_and_wait_read_a_damaged_run_and_say_what_they_skipped(tmp_path):
    run_dir = run_folder(tmp_path / "runs")
    damage(run_dir / "events.jsonl")
    damage(run_dir / "metrics.jsonl")
    listed = tc(tmp_path, "checkpoints", "runs")
    no_traceback(listed)
    assert listed.returncode == 0 and "hurt" in listed.stdout and "completed" in listed.stdout
    assert "metrics.jsonl: 4 lines skipped" in listed.stderr and "events.jsonl: 4 lines skipped" in listed.stderr
    waited = tc(tmp_path, "wait", str(run_dir))
    no_traceback(waited)
    assert waited.returncode == 0 and "completed" in waited.stdout
    assert "events.jsonl: 4 lines skipped" in waited.stderr


def test_plot_draws_what_is_usable_and_refuses_what_is_not(tmp_path):
    pytest.importorskip("matplotlib")
    run_dir = run_folder(tmp_path / "runs")
    damage(run_dir / "metrics.jsonl")
    drawn = tc(tmp_path, "plot", str(run_dir), "--out", str(tmp_path / "c.png"))
    no_traceback(drawn)
    assert drawn.returncode == 0 and (tmp_path / "c.png").is_file()
    assert "metrics.jsonl: 4 lines skipped" in drawn.stderr
    (run_dir / "metrics.jsonl").write_bytes(b"\xff\xfe garbage\n[[[[\n")
    nothing = tc(tmp_path, "plot", str(run_dir), "--out", str(tmp_path / "d.png"))
    no_traceback(nothing)
    assert nothing.returncode != 0 and "no epoch to draw" in nothing.stderr


@pytest.mark.parametrize("name", ["events.jsonl", "metrics.jsonl", "status.json", "settings.toml"])
def test_a_fifo_in_a_run_folder_is_refused_by_every_command(tmp_path, name):
    run_dir = run_folder(tmp_path / "runs")
    (run_dir / name).unlink(missing_ok=True)
    os.mkfifo(run_dir / name)
    for args in (["checkpoints", "runs"], ["wait", str(run_dir)], ["stop", str(run_dir)], ["pause", str(run_dir)]):
        done = tc(tmp_path, *args)  # a blocking open of the FIFO would hang here: the timeout fails the test
        no_traceback(done)
        if name in ("events.jsonl", "metrics.jsonl", "settings.toml") and args[0] == "checkpoints":
            assert f"{name}: a FIFO, not a regular file; refused" in done.stderr, (args, done.stderr)
        if args[0] in ("stop", "pause"):
            assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    if name == "metrics.jsonl":
        pytest.importorskip("matplotlib")
        done = tc(tmp_path, "plot", str(run_dir), "--out", str(tmp_path / "c.png"))
        no_traceback(done)
        assert done.returncode != 0 and "FIFO" in done.stderr


def test_a_fifo_among_foreign_logs_is_refused(tmp_path):
    (tmp_path / "logs" / "a").mkdir(parents=True)
    (tmp_path / "logs" / "b").mkdir()
    (tmp_path / "logs" / "a" / "metrics.csv").write_text("step,loss\n0,1.0\n")
    os.mkfifo(tmp_path / "logs" / "b" / "metrics.csv")
    code = (
        "from engine.outputs.readers import find_sources\n"
        "for s in find_sources('logs'): print(s.name, sorted(s.tags), s.note)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=PROMPT_S, env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert "a ['loss'] \n" in done.stdout and "b [] " in done.stdout and "FIFO" in done.stdout
