"""Words that say what happened (issue 25): who stopped a run, a pause that changed nothing, paths as given,
and metrics.jsonl's one precision, fresh or resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.api import Run
from engine.events import CommandReceived, RECORD_DIGITS
from engine.io.text import normal_path, shown_path
from engine.runs.commands import CommandWatcher, commands_path, open_channel
from engine.runs.records import event_record
from engine.training.control import RunControl


def _watcher(tmp_path: Path) -> tuple[CommandWatcher, RunControl, list]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    open_channel(run_dir)
    control, heard = RunControl(), []
    return CommandWatcher(run_dir, control, heard.append), control, heard


def _send(watcher: CommandWatcher, **record) -> None:
    """A line of the channel as a sender writes it, then the watcher's turn (its thread does the same)."""
    with open(commands_path(watcher.run_dir), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": f"c{record['command']}", "time": 0.0, "pid": 1, **record}) + "\n")
    for command in watcher.follower.read_new():
        watcher._apply(command)


@pytest.mark.parametrize(
    "by, said",
    [
        ("cli", "stopped by trainconsole stop: "),
        ("console", "stopped from an attached console: "),
        (None, "stopped by a stop command: "),  # a sender from before `by` was written
    ],
)
def test_a_stop_command_records_who_sent_it(tmp_path, by, said):
    watcher, control, heard = _watcher(tmp_path)
    _send(watcher, command="stop", **({} if by is None else {"by": by}))
    assert control.stop_requested and control.reason.startswith(said), control.reason
    assert "last.pth saved" in control.reason
    assert isinstance(heard[-1], CommandReceived) and heard[-1].changed


def test_pause_when_paused_and_resume_when_running_change_nothing_and_say_so(tmp_path):
    watcher, control, heard = _watcher(tmp_path)
    _send(watcher, command="resume", by="cli")
    assert (heard[-1].changed, heard[-1].detail) == (False, "already running")
    _send(watcher, command="pause", by="cli")
    assert heard[-1].changed and control.paused
    _send(watcher, command="pause", by="console")
    assert (heard[-1].changed, heard[-1].detail) == (False, "already paused") and control.paused
    _send(watcher, command="resume", by="cli")
    assert heard[-1].changed and not control.paused


def test_an_acknowledgment_recorded_before_changed_existed_still_reads():
    old = {"type": "CommandReceived", "time": 1.0, "command": "pause", "id": "x", "detail": "pausing", "sender_pid": 3}
    event = event_record(old)
    assert isinstance(event, CommandReceived) and event.changed is True
    assert event_record({**old, "changed": "no"}) is None  # a wrong type is still refused


@pytest.mark.parametrize(
    "given, shown",
    [
        ("runs/./x", "runs/x"),
        ("./runs/x/", "runs/x"),
        ("runs//x", "runs/x"),
        ("runs/y/../x", "runs/x"),
        ("/tmp/./runs/x", "/tmp/runs/x"),
        (Path("runs") / "x", "runs/x"),
        ("x", "x"),
    ],
)
def test_a_path_is_shown_as_given_normalised(given, shown):
    assert shown_path(given) == shown
    assert Path(normal_path(given)).is_absolute() == Path(given).is_absolute()


def test_a_shown_path_escapes_what_a_terminal_would_act_on():
    assert shown_path("runs/./a\x1b[2Jb") == "runs/a\\x1b[2Jb"
    assert shown_path("") == ""


def _timings(run_dir: Path) -> list[tuple[float, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(row["seconds"], row["samples_per_s"]) for row in rows]


def test_a_resumed_run_writes_its_records_with_the_precision_of_a_fresh_one(tiny_settings):
    fresh = Run(tiny_settings(), set_threads=False)
    fresh.run()
    last = fresh.run_dir / "checkpoints" / "last.pth"
    resumed = Run(tiny_settings("training.epochs=3"), resume_from=last, set_threads=False)
    resumed.run()
    assert resumed.run_dir == fresh.run_dir
    timings = _timings(resumed.run_dir)
    assert len(timings) == 3  # epochs 1-2 rewritten from the checkpoint's history, epoch 3 written fresh
    digits, rate_digits = RECORD_DIGITS["seconds"], RECORD_DIGITS["samples_per_s"]
    for seconds, rate in timings:
        assert seconds == round(seconds, digits) and rate == round(rate, rate_digits)
    # and the history the rewrite came from holds the numbers as measured: the rounding is the writer's
    history = resumed.history_rows()
    assert any(row["seconds"] != round(row["seconds"], RECORD_DIGITS["seconds"]) for row in history[:2])
