"""The console keeps the headless mode's promises: a signal stops and saves the run and closes it with 130;
a crash of the console itself stops and saves the run, writes its traceback to a file and exits 1."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from textual.binding import Binding

from engine.runs.folder import read_jsonl
from pilot_helpers import SIZE, run, tiny_settings, wait_for
import tui.app
from tui.app import TrainConsole


def long_settings(tmp_path):
    return tiny_settings(tmp_path, epochs=200).replace("data.batch_size", 1)


def events(tmp_path) -> list[dict]:
    return [e for run_dir in (tmp_path / "runs").glob("*") for e in read_jsonl(run_dir / "events.jsonl")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_the_run_at_a_batch_boundary_and_closes_the_console(tmp_path, sig):
    async def scenario():
        app = TrainConsole(long_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: app.torch_ready, timeout=120)
            await pilot.press("s")
            assert await wait_for(
                pilot, lambda: any(e["type"] == "BatchProgressed" for e in events(tmp_path)), timeout=120
            )
            control = app.run_control
            os.kill(os.getpid(), sig)
            assert await wait_for(pilot, lambda: app.return_code is not None, timeout=30)
        assert app.return_code == 130 and app.stopped_by == sig.name
        assert control.stop_requested and control.reason.startswith(f"{sig.name} received")
        return control

    run(scenario())
    deadline_events = []
    for _ in range(600):  # the training thread reaches its batch boundary and saves
        deadline_events = events(tmp_path)
        if deadline_events and deadline_events[-1]["type"] == "RunFinished":
            break
        time.sleep(0.1)
    final = deadline_events[-1]
    assert final["type"] == "RunFinished" and final["status"] == "stopped" and sig.name in final["reason"]
    last = torch.load(next((tmp_path / "runs").glob("*/checkpoints/last.pth")), weights_only=True)
    # the exact position: the epochs completed, and the batches of the next one (0 when the stop fell between epochs)
    assert last["epoch"] == sum(e["type"] == "EpochCompleted" for e in deadline_events)
    progress = [e for e in deadline_events if e["type"] == "BatchProgressed" and e["epoch"] == last["epoch"] + 1]
    assert last["batch"] >= (progress[-1]["batch"] if progress else 0)


class CrashingConsole(TrainConsole):
    CSS_PATH = str(Path(tui.app.__file__).parent / TrainConsole.CSS_PATH)  # relative paths are read beside the subclass
    BINDINGS = [Binding("z", "crash", "Crash")]

    def action_crash(self) -> None:
        raise RuntimeError("a bug in the console")


def test_a_crash_stops_the_run_writes_a_report_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    seen = {}

    async def scenario():
        app = CrashingConsole(long_settings(tmp_path), tmp_path / "settings.toml")
        with pytest.raises(RuntimeError, match="a bug in the console"):  # run_test re-raises it for the test
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("3")
                await wait_for(pilot, lambda: app.torch_ready, timeout=120)
                await pilot.press("s")
                assert await wait_for(pilot, lambda: app.run_control is not None, timeout=30)
                seen["control"] = app.run_control
                await pilot.press("z")
                await wait_for(pilot, lambda: app.return_code is not None, timeout=30)
        seen["app"] = app

    run(scenario())
    app = seen["app"]
    assert app.return_code == 1
    assert seen["control"].stop_requested and seen["control"].reason == "the console crashed"
    report = app.crash_report
    assert report is not None and report.parent == tmp_path / "state" / "trainconsole"
    text = report.read_text()
    assert "Traceback" in text and "RuntimeError: a bug in the console" in text and "action_crash" in text
    assert oct(report.stat().st_mode & 0o777) == "0o600"


def test_page_keys_in_the_command_palette_do_not_crash(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            for keys in (
                ("ctrl+p", "pageup"),
                ("ctrl+p", "pagedown"),
                ("ctrl+p", "down", "pagedown", "pageup"),
                ("ctrl+p", "x", "pageup"),
            ):
                for key in keys:
                    await pilot.press(key)
                await pilot.press("escape")
            assert app.return_code is None and app.is_running

    run(scenario())
