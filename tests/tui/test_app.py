"""Modes, help, quitting, and the promise that the first screen needs no torch."""

from __future__ import annotations

import subprocess
import sys

from textual.app import App

from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.configuration import ConfigurationScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.environment import EnvironmentScreen
from tui.screens.help import HelpScreen
from tui.screens.training import TrainingScreen


SCREEN_OF_KEY = {"1": EnvironmentScreen, "2": ConfigurationScreen, "3": TrainingScreen, "4": CheckpointsScreen}


async def _show(pilot, key: str) -> None:
    """Press a screen's number key and wait until that screen is shown and has handled what the switch sent it."""
    await pilot.press(key)
    assert await wait_for(pilot, lambda: isinstance(pilot.app.screen, SCREEN_OF_KEY[key]))
    await pilot.pause()


def test_number_keys_switch_between_the_four_screens(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, EnvironmentScreen)
            for key, screen in (
                ("2", ConfigurationScreen),
                ("3", TrainingScreen),
                ("4", CheckpointsScreen),
                ("1", EnvironmentScreen),
            ):
                await pilot.press(key)
                await wait_for(pilot, lambda: isinstance(app.screen, screen))
                assert isinstance(app.screen, screen)
                assert app.current_mode == screen.__name__.removesuffix("Screen").lower()

    run(scenario())


def test_clicking_a_tab_switches_screen(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.click("#tab-training")
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))

    run(scenario())


def test_question_mark_shows_help_and_escape_closes_it(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, TrainingScreen)

    run(scenario())


def test_q_without_a_run_quits_at_once(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            assert await wait_for(pilot, lambda: not app.is_running)

    run(scenario())


def test_q_during_a_run_asks_then_stops_the_run(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=500), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            assert await wait_for(pilot, lambda: app.screen.outcome == "running")
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert isinstance(app.screen, TrainingScreen) and app.run_control is not None
            control = app.run_control
            await pilot.press("q")
            await pilot.press("y")
            assert await wait_for(pilot, lambda: not app.is_running)
            assert control.stop_requested

    run(scenario())
    # the engine saves last.pth at the next batch boundary once stopped
    runs = list((tmp_path / "runs").glob("*/checkpoints/last.pth"))
    assert runs


def test_importing_the_app_loads_no_torch():
    code = (
        "import sys, tui.app, tui.screens.training, tui.screens.checkpoints, tui.screens.configuration, "
        "tui.screens.environment; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_footers_are_not_rebuilt_when_a_screen_comes_back(settings, tmp_path):
    """Textual's Footer recomposes on every screen switch; ours keeps its keys while they stay the same."""
    from tui.widgets.key_footer import KeyFooter

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            shown = lambda: isinstance(app.screen, TrainingScreen) and app.screen.query_one(KeyFooter).children  # noqa: E731
            assert await wait_for(pilot, shown)
            keys = list(app.screen.query_one(KeyFooter).children)
            assert any("Start" in str(key.render()) for key in keys)
            for key in ("1", "3", "1", "3"):
                await _show(pilot, key)
            assert isinstance(app.screen, TrainingScreen)
            assert list(app.screen.query_one(KeyFooter).children) == keys

    run(scenario())


def test_a_screen_shown_before_is_painted_after_one_frame(settings, tmp_path, monkeypatch):
    """Textual holds the display 50 ms on each switch to hide a half-composed screen.

    A screen shown before needs no such wait.
    """
    delays = []
    original = App.delay_update
    monkeypatch.setattr(App, "delay_update", lambda self, delay=0.05: (delays.append(delay), original(self, delay)))

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            for key in ("3", "1", "3", "4"):
                await _show(pilot, key)
            assert isinstance(app.screen, CheckpointsScreen)
            assert delays == [
                0.05,
                TrainConsole.SHOWN_SCREEN_PAINT_DELAY_S,
                TrainConsole.SHOWN_SCREEN_PAINT_DELAY_S,
                0.05,
            ]

    run(scenario())


def test_returning_to_a_screen_does_not_refresh_the_whole_css(settings, tmp_path, monkeypatch):
    """Textual refreshed all CSS (~40-90 ms) on the first return to each screen: its CSS count was never recorded."""
    refreshes = []
    original = App.refresh_css
    monkeypatch.setattr(
        App, "refresh_css", lambda self, animate=True: (refreshes.append(self.current_mode), original(self, animate))
    )

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            for key in ("3", "4", "2"):  # first visits
                await _show(pilot, key)
            refreshes.clear()
            for key in ("1", "3", "4", "2", "3"):
                await _show(pilot, key)
            assert isinstance(app.screen, TrainingScreen)
            assert refreshes == []

    run(scenario())
