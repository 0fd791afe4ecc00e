"""Unsaved settings are never lost silently: quitting (q, ctrl+q) or loading another file with edits asks
Save / Discard / Cancel; Save writes then goes on, Discard goes on, Cancel stays; nothing is asked without edits."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Label

from engine.settings.config import load_settings
from pilot_helpers import run, wait_for
from tui.app import TrainConsole
from tui.screens.configuration import ConfigurationScreen
from tui.screens.confirm import ConfirmScreen, UnsavedScreen
from tui.screens.training import TrainingScreen

SIZE = (80, 24)  # the smallest terminal the console promises to fit


def _settings_file(tmp_path, epochs: int = 3):
    path = tmp_path / "settings.toml"
    path.write_text(f'# mine\n[run]\nruns_dir = "{tmp_path / "runs"}"\n\n[training]\nepochs = {epochs}  # few\n')
    return path


async def _edit_epochs(app, pilot, value: str) -> None:
    """Screen 2, training.epochs typed as `value`, then escape: the screen keys (q) work again."""
    await pilot.press("2")
    assert await wait_for(pilot, lambda: isinstance(app.screen, ConfigurationScreen))
    app.screen.show_section("training")
    assert await wait_for(pilot, lambda: bool(app.screen.query("#field-training-epochs")))
    app.screen.query_one("#field-training-epochs Input", Input).value = value
    assert await wait_for(pilot, lambda: str(app.settings.training.epochs) == value)
    await pilot.press("escape")


def _question(app) -> str:
    return str(app.screen.query_one("#question", Label).render())


@pytest.mark.parametrize("quit_key", ["q", "ctrl+q"])
def test_quitting_without_edits_asks_nothing(tmp_path, quit_key):
    path = _settings_file(tmp_path)
    seen = []

    async def scenario():
        app = TrainConsole(load_settings(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfigurationScreen))
            await pilot.press(quit_key)
            assert await wait_for(pilot, lambda: seen.append(type(app.screen)) or not app.is_running)
        assert UnsavedScreen not in seen

    run(scenario())


@pytest.mark.parametrize(
    "quit_key,answer", [("q", "s"), ("q", "click-save"), ("ctrl+q", "d"), ("q", "escape"), ("q", "click-cancel")]
)
def test_quitting_with_edits_asks_and_does_what_the_answer_says(tmp_path, quit_key, answer):
    path = _settings_file(tmp_path)
    written = path.read_text()

    async def scenario():
        app = TrainConsole(load_settings(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await _edit_epochs(app, pilot, "7")
            await pilot.press(quit_key)
            assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
            assert _question(app).startswith(f"Unsaved changes in {path}: training.epochs.")
            if answer.startswith("click-"):
                await pilot.click(f"#{answer.removeprefix('click-')}")
            else:
                await pilot.press(answer)
            if answer in ("escape", "click-cancel"):
                assert await wait_for(pilot, lambda: isinstance(app.screen, ConfigurationScreen))
                assert app.is_running and app.settings.training.epochs == 7
                await pilot.press("q")  # asked again: the edits are still unsaved
                assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
                return
            assert await wait_for(pilot, lambda: not app.is_running)

    run(scenario())
    if answer in ("s", "click-save"):
        assert load_settings(path).training.epochs == 7
        assert path.read_text().startswith("# mine\n")  # the file's comments stay
    else:
        assert path.read_text() == written


def test_saving_clears_the_edits_and_a_change_back_is_no_edit(tmp_path):
    path = _settings_file(tmp_path)

    async def scenario():
        app = TrainConsole(load_settings(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await _edit_epochs(app, pilot, "7")
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: load_settings(path).training.epochs == 7)
            await _edit_epochs(app, pilot, "9")
            await _edit_epochs(app, pilot, "7")  # as saved again
            await pilot.press("q")
            assert await wait_for(pilot, lambda: not app.is_running)

    run(scenario())


def test_loading_another_file_with_edits_asks_first(tmp_path):
    path = _settings_file(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("[training]\nepochs = 11\n")

    async def scenario():
        app = TrainConsole(load_settings(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await _edit_epochs(app, pilot, "7")
            path_field = app.screen.query_one("#settings-path", Input)
            path_field.value = str(other)
            await pilot.press("ctrl+o", "enter")
            assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
            assert _question(app).startswith(f"Unsaved changes in {path}: training.epochs.")
            await pilot.press("escape")  # cancel: this file and its edits stay, and Save still writes to it
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfigurationScreen))
            assert app.settings_path == path and app.settings.training.epochs == 7
            assert path_field.value == str(path)
            path_field.value = str(other)
            await pilot.press("ctrl+o", "enter")
            assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
            await pilot.press("s")  # saved to the first file, then the other loaded
            assert await wait_for(pilot, lambda: app.settings_path == other)
            assert app.settings.training.epochs == 11 and load_settings(path).training.epochs == 7
            await pilot.press("escape", "q")  # the other file as loaded: nothing to ask
            assert await wait_for(pilot, lambda: not app.is_running)

    run(scenario())


def test_q_during_a_run_asks_about_the_run_then_the_edits_and_stops_the_run_only_on_the_way_out(tmp_path):
    path = _settings_file(tmp_path, epochs=500)

    async def scenario():
        app = TrainConsole(load_settings(path), path)
        async with app.run_test(size=SIZE) as pilot:
            await _edit_epochs(app, pilot, "400")
            await pilot.press("3", "s")
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))
            assert await wait_for(pilot, lambda: app.screen.outcome == "running")
            control = app.run_control
            await pilot.press("q")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
            await pilot.press("escape")  # cancel: the run goes on
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))
            assert app.is_running and not control.stop_requested
            await pilot.press("q", "y")
            assert await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
            await pilot.press("d")
            assert await wait_for(pilot, lambda: not app.is_running)
            assert control.stop_requested

    run(scenario())
    assert load_settings(path).training.epochs == 500
