"""The checkpoints screen's comparison: two marked runs, val curves overlaid, best metrics, settings that differ."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable

from engine.settings.config import to_toml
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.compare import CompareScreen
from tui.widgets.metric_chart import MetricChart


def fake_run(runs_dir: Path, name: str, settings, val_losses: list[float]) -> Path:
    """A finished-looking run folder: settings.toml, metrics.jsonl, an empty checkpoints/ (listed, not loaded)."""
    folder = runs_dir / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "settings.toml").write_text(to_toml(settings.replace("run.name", name)))
    rows = [
        {"epoch": i, "train_loss": v / 2, "val_loss": v, "train_acc": 0.9, "val_acc": 1 - v / 4, "lr": 1e-3}
        for i, v in enumerate(val_losses, 1)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_two_marked_runs_open_a_comparison_of_both(tmp_path):
    settings = tiny_settings(tmp_path)
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "lr-small", settings, [1.0, 0.6, 0.4])
    fake_run(runs_dir, "lr-big", settings.replace("training.lr", 0.01), [0.9, 0.5, 0.3, 0.35])

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            assert isinstance(screen, CheckpointsScreen)
            assert await wait_for(pilot, lambda: screen.query_one("#runs", DataTable).row_count == 2)
            await pilot.press("c")  # nothing marked: a warning, no comparison
            assert app.screen is screen
            await pilot.press("m", "down", "m")
            runs_table = screen.query_one("#runs", DataTable)
            assert sorted(str(runs_table.get_row_at(i)[0]) for i in range(2)) == ["+ lr-big", "+ lr-small"]  # marked
            await pilot.press("c")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            compare = app.screen
            names = {r.name for r in compare.runs}
            assert names == {"lr-small", "lr-big"}
            loss = compare.query_one("#cmp-loss", MetricChart)
            assert set(loss.series) == names and loss.epochs == [1, 2, 3, 4]
            assert len(set(loss.colors().values())) == 2  # one colour per run
            assert all(name in loss.title_line().plain for name in names)  # the key names each run
            best = compare.query_one("#cmp-best", DataTable)
            rows = {str(best.get_row_at(i)[0]): best.get_row_at(i) for i in range(best.row_count)}
            assert rows["lr-big"][2:4] == ["0.3000", "3"] and rows["lr-small"][2:4] == ["0.4000", "3"]
            differing = compare.query_one("#cmp-settings", DataTable)
            assert [str(differing.get_row_at(i)[0]) for i in range(differing.row_count)] == ["training.lr"]
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: app.screen is screen)

    run(scenario())


def test_two_runs_with_identical_curves_are_both_drawn_and_said_to_overlap(tmp_path):
    from textual.widgets import Static

    settings = tiny_settings(tmp_path)
    runs_dir = tmp_path / "runs"
    same = [1.0, 0.6, 0.4, 0.45]  # two runs of one seed: the same numbers
    folders = [fake_run(runs_dir, name, settings, same) for name in ("seed0-a", "seed0-b")]

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(CompareScreen(folders))
            compare = app.screen
            for chart_id in ("#cmp-loss", "#cmp-acc"):
                chart = compare.query_one(chart_id, MetricChart)
                assert await wait_for(pilot, lambda: chart.epochs == [1, 2, 3, 4])
                note = chart.query_one(".chart-note", Static)
                assert note.display and str(note.render()) == "runs seed0-a and seed0-b overlap"
                markers = chart.markers()
                assert markers["seed0-a"] != markers["seed0-b"]  # the later one drawn and keyed apart
                assert note.region.height == 1 and note.region.y < compare.query_one("#cmp-tables").region.y

    run(scenario())
