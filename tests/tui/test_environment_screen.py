from __future__ import annotations

import torch
from textual.widgets import Select, Static

from pilot_helpers import SIZE, run, wait_for
from tui.app import TrainConsole
from tui.screens.environment import device_choices


def test_environment_screen_shows_the_report(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            report = app.screen.query_one("#env-report", Static)
            assert await wait_for(pilot, lambda: torch.__version__ in str(report.render()))
            text = str(report.render())
            assert "CUDA" in text and "Auto device" in text

    run(scenario())


def test_picking_a_device_changes_the_settings(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.report is not None)
            screen.query_one("#device-select", Select).value = "cpu"
            assert await wait_for(pilot, lambda: app.settings.device.device == "cpu")

    run(scenario())


def test_device_choices_list_only_what_the_machine_has():
    report = {"gpus": [{"index": 0}, {"index": 1}], "mps_available": False}
    assert device_choices(report) == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert device_choices({"gpus": [], "mps_available": True}) == ["auto", "cpu", "mps"]


def test_settings_that_say_cpu_are_not_turned_to_auto_by_opening_the_console(settings, tmp_path):
    """The select's own start (its first option) and the machine's choices arriving are not the user's pick: the
    settings keep device.device = 'cpu', and quitting asks about nothing. Both with the screen shown and with the
    console gone on to another screen (attach) before the report came."""
    from tui.unsaved import changed_keys

    cpu = settings.replace("device.device", "cpu")

    async def scenario(leave: bool):
        app = TrainConsole(cpu, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            if leave:
                await app.switch_mode("training")
            assert await wait_for(pilot, lambda: screen.report is not None)
            await pilot.pause()
            assert app.settings.device.device == "cpu" and changed_keys(app) == []
            assert screen.query_one("#device-select", Select).value == "cpu"

    run(scenario(False))
    run(scenario(True))
