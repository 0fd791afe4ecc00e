"""The configuration screen's learning-rate finder: ctrl+l sweeps in a worker, the dialog shows the curve and the
suggestion, `a` puts the rate in training.lr, and the settings file changes only when saved."""

from __future__ import annotations

from textual.widgets import Input, Static

from engine.settings.config import load_settings
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.lr_find import LrFindScreen
from tui.widgets.metric_chart import CachedPlot
from tui.widgets.setting_field import toml_text

FILE = '# mine\n[training]\nlr = 0.001  # to tune\n\n[lr_find]\nsteps = 20\n'


def test_the_finder_key_shows_the_curve_and_a_applies_the_rate_unsaved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "settings.toml"
    path.write_text(FILE)
    settings = tiny_settings(tmp_path).replace("lr_find.steps", 20)

    async def scenario():
        app = TrainConsole(settings, path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            await pilot.press("ctrl+l")
            assert await wait_for(pilot, lambda: isinstance(app.screen, LrFindScreen))
            dialog = app.screen
            assert await wait_for(pilot, lambda: dialog.result is not None, timeout=240)
            lr = dialog.result.suggestion
            assert lr is not None and len(dialog.result.points) >= 10
            summary = str(dialog.query_one("#lr-find-summary", Static).render())
            assert f"suggested learning rate: {lr:.3g}" in summary
            chart = dialog.query_one(CachedPlot)
            assert await wait_for(pilot, lambda: "learning rate" in str(chart.render()))
            await pilot.press("a")
            assert await wait_for(pilot, lambda: not isinstance(app.screen, LrFindScreen))
            assert app.settings.training.lr == lr
            field = app.screen.query_one("#field-training-lr")
            assert await wait_for(pilot, lambda: field.query_one(Input).value == toml_text(lr))
            assert path.read_text() == FILE, "unsaved until ctrl+s"
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: load_settings(path).training.lr == lr)
            assert path.read_text().startswith("# mine\n[training]\nlr = ")

    run(scenario())


def test_escape_cancels_the_sweep_and_changes_nothing(tmp_path, monkeypatch):
    import engine.training.lr_find as lr_find

    ended = []
    find_lr = lr_find.find_lr
    monkeypatch.setattr(lr_find, "find_lr", lambda *a, **k: ended.append(find_lr(*a, **k)) or ended[-1])
    path = tmp_path / "settings.toml"
    path.write_text(FILE)
    settings = tiny_settings(tmp_path).replace("lr_find.steps", 10_000)

    async def scenario():
        app = TrainConsole(settings, path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            await pilot.press("ctrl+l")
            assert await wait_for(pilot, lambda: isinstance(app.screen, LrFindScreen))
            dialog = app.screen
            progress = dialog.query_one("#lr-find-progress")
            assert await wait_for(pilot, lambda: (progress.progress or 0) > 0, timeout=240)
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: not isinstance(app.screen, LrFindScreen))
            assert await wait_for(pilot, lambda: bool(ended), timeout=240), "the worker's sweep ended"
            assert ended[0].stopped == "cancelled" and len(ended[0].points) < 10_000
            assert app.settings.training.lr == settings.training.lr
            assert path.read_text() == FILE

    run(scenario())
