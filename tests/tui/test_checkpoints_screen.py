"""The checkpoints screen after a real run: list, evaluate, resume, delete."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from engine.api import Run
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.training import TrainingScreen
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart


def _train(settings, runs: int = 1) -> None:
    for _ in range(runs):
        Run(settings, lambda event: None).run()


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A folder with one finished 2-epoch run, shared by the layout tests (they only read it)."""
    tmp_path = tmp_path_factory.mktemp("one-run")
    _train(tiny_settings(tmp_path, epochs=2))
    return tmp_path


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
            await pilot.pause()
            longest = max(len(line) for line in str(details.render()).splitlines())
            assert details.size.width >= longest, (
                "the report is wrapped (a confusion matrix loses its shape): it scrolls instead"
            )

            app.set_settings(app.settings.replace("training.epochs", 3))  # train one epoch more
            await pilot.press("r")
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen), timeout=10)
            assert await wait_for(
                pilot, lambda: training.outcome == "completed" and training.query_one(EpochTable).row_count == 3
            )

            await pilot.press("4")
            assert await wait_for(pilot, lambda: runs.row_count == 1 and screen.runs[0].epochs == 3, timeout=10)
            assert screen.focused is runs
            await pilot.press("delete")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert run_dir.exists()
            await pilot.press("delete")
            await pilot.press("y")
            assert await wait_for(pilot, lambda: not run_dir.exists(), timeout=5)
            assert await wait_for(pilot, lambda: runs.row_count == 0, timeout=10)

    run(scenario())


def test_up_and_down_pick_a_run_when_the_screen_is_shown_and_after_a_resume(tmp_path):
    """The screen tabs are the first focusable widget: the runs table must get the focus instead."""
    _train(tiny_settings(tmp_path, epochs=1), runs=2)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=2), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            runs = screen.query_one("#runs", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 2, timeout=10)
            assert screen.focused is runs
            first = screen.selected_run().path
            await pilot.press("down")
            assert screen.selected_run().path != first

            await pilot.press("r")  # resume the second run for one epoch more
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen), timeout=10)
            training = app.screen
            assert await wait_for(pilot, lambda: training.outcome == "completed")
            await pilot.press("4")
            assert await wait_for(
                pilot, lambda: runs.row_count == 2 and max(r.epochs for r in screen.runs) == 2, timeout=10
            )
            assert screen.focused is runs
            selected = screen.selected_run().path
            await pilot.press("down" if runs.cursor_row == 0 else "up")
            assert screen.selected_run().path != selected

            await pilot.click("#tab-training")  # a click focuses the tabs of this screen
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen), timeout=5)
            await pilot.press("4")
            assert await wait_for(pilot, lambda: app.screen is screen, timeout=5)
            assert screen.focused is runs

    run(scenario())


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tables_show_every_column_and_the_chart_gets_most_of_the_rows(one_run, size):
    async def scenario():
        app = TrainConsole(tiny_settings(one_run), one_run / "settings.toml")
        async with app.run_test(size=size) as pilot:
            await pilot.press("4")
            screen = app.screen
            runs, ckpts = screen.query_one("#runs", DataTable), screen.query_one("#ckpts", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 1 and ckpts.row_count == 2, timeout=10)
            await pilot.pause()
            for table in (runs, ckpts):
                assert table.virtual_size.width <= table.scrollable_content_region.width, f"{table.id} is cut"
                assert table.virtual_size.height <= table.scrollable_content_region.height, f"{table.id} hides rows"
            most = 0.6 if size[0] >= 100 else 0.55  # stacked, each table's title line is a row more above the chart
            assert screen.query_one(MetricChart).region.height >= most * size[1]
            if size[0] < 100:  # one above the other
                assert ckpts.region.y >= runs.region.bottom and screen.has_class("-narrow")
            else:  # side by side
                assert (
                    ckpts.region.y == runs.region.y
                    and ckpts.region.x >= runs.region.right
                    and screen.has_class("-wide")
                )

    run(scenario())


def test_after_a_delete_the_selection_moves_to_the_neighbour_and_evaluate_uses_the_consoles_device(tmp_path):
    """Three runs; the last one is deleted: the one above it is selected, not the first.

    The runs say `device = "cuda:7"`: evaluate and resume use the device chosen on screen 1 instead.
    """
    _train(tiny_settings(tmp_path, epochs=1), runs=3)
    for settings in (tmp_path / "runs").glob("*/settings.toml"):
        text = settings.read_text()
        assert 'device = "auto"' in text
        settings.write_text(text.replace('device = "auto"', 'device = "cuda:7"'))

    async def scenario():
        app = TrainConsole(
            tiny_settings(tmp_path, epochs=1).replace("device.device", "cpu"), tmp_path / "settings.toml"
        )
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            runs = screen.query_one("#runs", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 3, timeout=10)
            await pilot.press("e")
            details = screen.query_one("#ck-details", Static)
            assert await wait_for(
                pilot, lambda: "Accuracy" in str(details.render()) or "failed" in str(details.render()), timeout=60
            )
            assert "Accuracy" in str(details.render()), details.render()
            await pilot.press("down", "down")
            doomed, neighbour = screen.runs[2].path, screen.runs[1].path
            await pilot.press("delete")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
            await pilot.press("y")
            assert await wait_for(pilot, lambda: runs.row_count == 2, timeout=10)
            assert all(r.path != doomed for r in screen.runs)
            assert screen.selected_run().path == neighbour

    run(scenario())
