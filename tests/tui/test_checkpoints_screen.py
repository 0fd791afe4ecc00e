"""The checkpoints screen after a real run: list, evaluate, resume, delete."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.training import TrainingScreen
from tui.widgets.epoch_table import EpochTable


def test_list_evaluate_resume_and_delete_a_run(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=2), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            training = app.screen
            assert await wait_for(pilot, lambda: training.outcome == "completed")

            await pilot.press("4")
            screen = app.screen
            assert isinstance(screen, CheckpointsScreen)
            runs = screen.query_one("#runs", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 1, timeout=10)
            run_dir = tmp_path / "runs" / screen.runs[0].name
            assert screen.query_one("#ckpts", DataTable).row_count == 2  # best.pth, last.pth

            await pilot.press("e")
            details = screen.query_one("#ck-details", Static)
            assert await wait_for(pilot, lambda: "Accuracy" in str(details.render()), timeout=20)

            app.set_settings(app.settings.replace("training.epochs", 3))  # train one epoch more
            await pilot.press("r")
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen), timeout=10)
            assert await wait_for(pilot, lambda: training.outcome == "completed" and training.query_one(EpochTable).row_count == 3)

            await pilot.press("4")
            assert await wait_for(pilot, lambda: runs.row_count == 1 and screen.runs[0].epochs == 3, timeout=10)
            runs.focus()
            await pilot.press("delete")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert run_dir.exists()
            await pilot.press("delete")
            await pilot.press("y")
            assert await wait_for(pilot, lambda: not run_dir.exists(), timeout=5)
            assert await wait_for(pilot, lambda: runs.row_count == 0, timeout=10)

    run(scenario())
