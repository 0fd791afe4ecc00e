"""`trainconsole view`: event files written by torch.utils.tensorboard and a Lightning CSVLogger metrics.csv."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from engine.outputs.readers import find_sources
from pilot_helpers import SIZE, run, wait_for
from tui.screens.scalars import ScalarsApp, ScalarsScreen
from tui.widgets.metric_chart import MetricChart

pytest.importorskip("tensorboard")

LIGHTNING_HEADER = "epoch,step,train_loss_step,val_loss,val_acc,train_loss_epoch\n"
# as CSVLogger writes it: one column per logged name, a row per log call, the others left empty
LIGHTNING_ROWS = [
    "0,49,0.91,,,\n",
    "0,99,0.62,,,\n",
    "0,99,,0.55,0.81,0.70\n",
    "1,149,0.41,,,\n",
    "1,199,0.33,,,\n",
    "1,199,,0.38,0.88,0.37\n",
]


def tensorboard_run(folder: Path, steps: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for step in range(steps):
            writer.add_scalar("Loss/train", 1.0 / (step + 1), step)
            writer.add_scalar("Accuracy/val", 0.5 + step / 20, step)


def lightning_run(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text("lr: 0.001\n")
    path = folder / "metrics.csv"
    path.write_text(LIGHTNING_HEADER + "".join(rows))
    return path


def test_readers_find_the_tags_of_both_layouts(tmp_path):
    tensorboard_run(tmp_path / "tb" / "a", 5)
    tensorboard_run(tmp_path / "tb" / "b", 3)
    lightning_run(tmp_path / "lightning_logs" / "version_0", LIGHTNING_ROWS)
    sources = {s.name: s for s in find_sources(tmp_path)}
    assert set(sources) == {"tb/a", "tb/b", "lightning_logs/version_0"}
    assert set(sources["tb/a"].tags) == {"Loss/train", "Accuracy/val"}
    assert [s for s, _ in sources["tb/a"].tags["Loss/train"]] == [0, 1, 2, 3, 4]
    assert sources["tb/b"].tags["Accuracy/val"][-1] == (2, pytest.approx(0.6))
    csv_tags = sources["lightning_logs/version_0"].tags
    assert set(csv_tags) == {"train_loss_step", "val_loss", "val_acc", "train_loss_epoch"}
    assert csv_tags["val_loss"] == [(99, 0.55), (199, 0.38)]


def test_view_lists_every_tag_charts_runs_overlaid_and_follows_a_growing_file(tmp_path):
    tensorboard_run(tmp_path / "tb" / "a", 5)
    tensorboard_run(tmp_path / "tb" / "b", 3)
    csv_path = lightning_run(tmp_path / "lightning_logs" / "version_0", LIGHTNING_ROWS[:3])

    async def scenario():
        app = ScalarsApp(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: isinstance(app.screen, ScalarsScreen) and app.screen.tags)
            screen = app.screen
            tags = screen.query_one("#sc-tags", DataTable)
            listed = [str(tags.get_row_at(i)[0]) for i in range(tags.row_count)]
            assert listed == sorted(["Loss/train", "Accuracy/val", "train_loss_step", "val_loss", "val_acc",
                                     "train_loss_epoch"])  # fmt: skip
            tags.move_cursor(row=listed.index("Loss/train"))
            chart = screen.query_one("#sc-chart", MetricChart)
            assert await wait_for(pilot, lambda: set(chart.series) == {"tb/a", "tb/b"})
            assert chart.epochs == [0, 1, 2, 3, 4]
            tags.move_cursor(row=listed.index("val_loss"))
            assert await wait_for(pilot, lambda: chart.epochs == [99])
            with open(csv_path, "a") as fh:  # the Lightning run goes on
                fh.writelines(LIGHTNING_ROWS[3:])
            screen.action_reload()  # what the follow timer calls
            assert await wait_for(pilot, lambda: chart.epochs == [99, 199])
            assert tags.get_row_at(listed.index("val_loss"))[2] == "199"

    run(scenario())


def test_the_checkpoints_screen_opens_a_folder_of_logs_and_escape_comes_back(tmp_path):
    from textual.widgets import Input

    from pilot_helpers import tiny_settings
    from tui.app import TrainConsole
    from tui.screens.checkpoints import CheckpointsScreen

    logs = tmp_path / "logs"
    tensorboard_run(logs / "tb", steps=3)
    lightning_run(logs / "lightning", LIGHTNING_ROWS)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
            await pilot.press("o")
            assert await wait_for(pilot, lambda: bool(app.screen.query("#logs-path")))
            app.screen.query_one("#logs-path", Input).value = str(logs)
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ScalarsScreen))
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.query_one(DataTable).row_count >= 4)  # the tags of both layouts
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
            assert app.is_running

    run(scenario())
