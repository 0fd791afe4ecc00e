"""A run steered and read from other processes: the event follower, the command channel, the status file."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from engine.events import CommandReceived, EpochCompleted, RunFinished, RunPaused, RunResumed
from engine.runs.commands import NotRunning, RemoteControl, commands_path, open_channel, send_command, wait_for_ack
from engine.runs.records import LineFollower
from engine.runs.status import read_status, run_status
from engine.training.control import RunControl
from engine.api import Run


def test_the_follower_holds_back_a_half_written_line(tmp_path):
    path = tmp_path / "events.jsonl"
    follower = LineFollower(path, lambda obj: obj)
    assert follower.read_new() == []  # not there yet
    path.write_text('{"type": "RunStarted"}\n{"type": "Epoch')
    assert follower.read_new() == [{"type": "RunStarted"}]
    with open(path, "a") as fh:
        fh.write('Completed", "epoch": 1}\n{"type": "RunFinished"}\n')
    assert [e["type"] for e in follower.read_new()] == ["EpochCompleted", "RunFinished"]
    assert follower.read_new() == [] and follower.skipped == 0


def test_a_command_to_a_run_that_is_not_running_is_one_line(tiny_settings):
    trainer = Run(tiny_settings("training.epochs=1"), set_threads=False)
    trainer.run()
    with pytest.raises(NotRunning, match="is not running \\(completed: trained 1 epoch\\); nothing to stop") as e:
        send_command(trainer.run_dir, "stop")
    assert "\n" not in str(e.value)


def test_the_channel_is_the_owners_only(tmp_path):
    path = open_channel(tmp_path)
    assert path == commands_path(tmp_path) and path.read_text() == ""
    assert oct(os.stat(path.parent).st_mode & 0o777) == "0o700"


def run_in_thread(settings, control=None):
    events: list = []
    trainer = Run(settings, events.append, control or RunControl(), set_threads=False, progress_interval_s=0.0)
    trainer.setup()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    return trainer, thread, events


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_pause_resume_and_stop_from_another_process_are_applied_and_acknowledged(tiny_settings):
    trainer, thread, events = run_in_thread(tiny_settings("training.epochs=500", "data.batch_size=2"))
    try:
        wait_until(lambda: any(isinstance(e, EpochCompleted) for e in events))
        remote = RemoteControl(trainer.run_dir)
        assert remote.toggle_pause() is True
        wait_until(lambda: any(isinstance(e, RunPaused) for e in events))
        # the status file's listener hears RunPaused after this test's, and the recorder's events.jsonl (run_status)
        # may come before status.json's write: wait for both, not for a fixed time
        wait_until(lambda: run_status(trainer.run_dir).status == "paused"
                   and getattr(read_status(trainer.run_dir), "state", None) == "paused")
        assert read_status(trainer.run_dir).state == "paused"
        remote.saw(next(e for e in events if isinstance(e, RunPaused)))
        assert remote.toggle_pause() is False  # it was paused: the toggle resumes
        wait_until(lambda: any(isinstance(e, RunResumed) for e in events))
        command_id = send_command(trainer.run_dir, "stop")
        ack = wait_for_ack(trainer.run_dir, command_id, timeout_s=60)
        assert ack is not None and ack.command == "stop" and ack.sender_pid == os.getpid()
    finally:
        trainer.control.stop("test over")
        thread.join(timeout=120)
    final = events[-1]
    assert isinstance(final, RunFinished) and final.status == "stopped" and "trainconsole stop" in final.reason
    assert [e.command for e in events if isinstance(e, CommandReceived)] == ["pause", "resume", "stop"]
    assert read_status(trainer.run_dir).state == "ended" and read_status(trainer.run_dir).outcome == "stopped"
    recorded = [json.loads(line)["type"] for line in (trainer.run_dir / "events.jsonl").read_text().splitlines()]
    assert recorded.count("CommandReceived") == 3


def test_a_resumed_run_does_not_replay_the_commands_of_its_last_session(tiny_settings):
    trainer, thread, events = run_in_thread(tiny_settings("training.epochs=500", "data.batch_size=2"))
    try:
        wait_until(lambda: any(isinstance(e, EpochCompleted) for e in events))
        wait_for_ack(trainer.run_dir, send_command(trainer.run_dir, "stop"), timeout_s=60)
    finally:
        thread.join(timeout=120)
    last = trainer.run_dir / "checkpoints" / "last.pth"
    assert '"stop"' in commands_path(trainer.run_dir).read_text()
    again = Run(tiny_settings("training.epochs=500", "data.batch_size=2"), [], resume_from=last, set_threads=False)
    again.setup()
    assert commands_path(again.run_dir).read_text() == ""  # the earlier stop is not waiting there for this session
    again.close()
