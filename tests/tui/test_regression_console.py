"""A regression run in the console (issue 24): R² in place of accuracy on the chart, R², MAE, RMSE in the table."""

from __future__ import annotations

from textual.widgets import Static

from engine.events import Diagnostic, EpochCompleted, RunStarted
from pilot_helpers import SIZE, ScreenTime, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.messages import EngineEvent
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart


def _run_started(run_dir) -> RunStarted:
    settings = {"model": {"name": "mlp"}, "data": {"dataset": "csv"}}
    return RunStarted(str(run_dir), settings, "cpu", "x86_64", 11, 354, 88, 12, "csv:diabetes.csv", "fp32", 0, 5, 1,
                      baseline_loss=1.03, baseline_acc=None)


def _epoch(n: int) -> EpochCompleted:
    return EpochCompleted(n, 5, 1 / n, 1.2 / n, None, None, 1e-3, 0.1, 9000.0, Diagnostic("ok", "fine"), False, None,
                          train_mae=40.0, val_mae=45.5 + n, train_rmse=50.0, val_rmse=55.25, train_r2=0.5,
                          val_r2=0.1 * n)


def test_the_training_screen_shows_r2_mae_and_rmse_of_a_regression(tmp_path, monkeypatch):
    times = ScreenTime(monkeypatch)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            screen = pilot.app.screen
            for event in (_run_started(tmp_path), _epoch(1), _epoch(2)):
                screen.post_message(EngineEvent(event))
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 2)
            times.fire()
            second = screen.query_one("#acc-chart", MetricChart)
            assert await wait_for(pilot, lambda: second.epochs == [1, 2])
            await pilot.pause()
            assert second.title == "R²" and "R²" in str(second.query_one(".chart-title", Static).render())
            assert second.series["val"] == [0.1, 0.2]
            table = screen.query_one(EpochTable)
            assert await wait_for(pilot, lambda: table.row_count == 2)
            cells = [str(c) for c in table.get_row_at(1)]
            assert cells[2] == "R² 0.500" and cells[4] == "R² 0.200 MAE 47.5 RMSE 55.25", cells
            headers = [str(c.label) for c in table.ordered_columns]
            assert headers[2] == "train R²" and headers[4] == "val R² · MAE · RMSE", headers
            table.reset()
            assert [str(c.label) for c in table.ordered_columns][4] == "val acc"
            assert "mean predictor" in str(screen.query_one("#run-info", Static).render())

    run(scenario())
