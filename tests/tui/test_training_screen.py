"""Real tiny runs on digits, started from the training screen and polled to the end."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.widgets.diagnostic_badge import DiagnosticBadge
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart

ENDED = ("completed", "early_stopped", "stopped", "nan", "failed")


def _status(app) -> str:
    return str(app.screen.query_one("#run-status", Static).render())


def test_s_trains_a_run_to_the_end(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=3), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome in ENDED)
            assert screen.outcome == "completed", _status(app)
            assert screen.query_one(EpochTable).row_count == 3
            assert screen.query_one(DiagnosticBadge).status in ("ok", "overfitting", "underfitting", "nan")
            run_dir = next((tmp_path / "runs").iterdir())
            assert "Run finished" in _status(app) and str(run_dir) in _status(app)
            assert screen.query_one("#loss-chart", MetricChart).epochs == [1, 2, 3]
            assert app.run_control is None

    run(scenario())


def test_a_run_that_cannot_start_leaves_the_console_usable(tmp_path):
    bad = tiny_settings(tmp_path).replace("data.path", str(tmp_path / "missing.csv")).replace("data.dataset", "csv")

    async def scenario():
        app = TrainConsole(bad, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome in ENDED)
            assert screen.outcome == "failed"
            assert "could not start" in _status(app) and "missing.csv" in _status(app)
            assert await wait_for(pilot, lambda: app.run_control is None, timeout=5)
            app.set_settings(tiny_settings(tmp_path, epochs=2))
            await pilot.press("s")
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            assert screen.query_one(EpochTable).row_count == 2

    run(scenario())


def test_p_pauses_and_resumes_and_x_stops_and_saves(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=500), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "running")
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "paused", timeout=10)
            assert "Paused" in _status(app)
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "running", timeout=10)
            await pilot.press("x")
            assert await wait_for(pilot, lambda: screen.outcome in ENDED, timeout=20)
            assert screen.outcome == "stopped"
            assert "Run stopped" in _status(app)

    run(scenario())
    assert list(Path(tmp_path / "runs").glob("*/checkpoints/last.pth"))
