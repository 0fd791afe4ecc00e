"""Run folders made to break the CLI, found by a review after issue 21: each through the real command, which
answers in bounded time and memory, without a traceback or an internal error, with the exit code it owes."""

from __future__ import annotations

import json
import os
import socket
import time

from tests.e2e.test_untrusted_folders import no_traceback, run_folder, tc


def status(run_dir, **fields) -> None:
    now = time.time()
    base = {"pid": os.getpid(), "host": socket.gethostname(), "started": now, "heartbeat": now, "state": "running"}
    (run_dir / "status.json").write_text(json.dumps({**base, **fields}))


def clean(done) -> None:
    no_traceback(done)
    assert "internal error" not in done.stderr, done.stderr


def test_a_pid_beyond_any_process_is_an_invalid_status_not_a_crash(tmp_path):
    run_dir = run_folder(tmp_path / "runs")
    status(run_dir, pid=2**40, state="starting")  # os.kill overflowed on it
    for args in (("checkpoints", "runs"), ("wait", str(run_dir)), ("stop", str(run_dir))):
        done = tc(tmp_path, *args)
        clean(done)
    assert tc(tmp_path, "wait", str(run_dir)).returncode == 0  # its events say completed


def test_wait_on_a_status_no_process_of_ours_could_have_written_returns(tmp_path):
    """A live pid without its start time (pid 1), another host's heartbeat from the future: not running forever."""
    run_dir = run_folder(tmp_path / "runs")
    for fields in (
        {"pid": 1, "state": "starting"},
        {"host": socket.gethostname() + "-elsewhere", "heartbeat": time.time() + 10**6},
    ):
        status(run_dir, **fields)
        done = tc(tmp_path, "wait", str(run_dir))  # waited forever before: the timeout fails it
        clean(done)
        assert done.returncode == 0 and "completed" in done.stdout, fields
        assert "not running" in tc(tmp_path, "stop", str(run_dir)).stderr


def test_a_sparse_metrics_file_of_gigabytes_is_refused_not_read_into_memory(tmp_path):
    run_dir = run_folder(tmp_path / "runs")
    with open(run_dir / "metrics.jsonl", "r+b") as fh:
        fh.truncate(5 * 2**30)  # no disk taken; a MemoryError (or the machine's memory) when read whole
    done = tc(tmp_path, "checkpoints", "runs")
    clean(done)
    assert done.returncode == 0 and "metrics.jsonl: larger than" in done.stderr


def test_a_checkpoint_named_with_a_digit_int_refuses_is_listed(tmp_path):
    run_dir = run_folder(tmp_path / "runs")
    (run_dir / "checkpoints" / "epoch_\u00b2.pth").write_bytes(b"")  # "²".isdigit() is True, int("²") raises
    for args in (("checkpoints", "runs"), ("checkpoints", "runs", "--json")):
        done = tc(tmp_path, *args)
        clean(done)
        assert done.returncode == 0 and "epoch_" in done.stdout
