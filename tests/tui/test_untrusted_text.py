"""Names from files in the console (issue 21): shown as written, never parsed as markup, no control character on
screen; no screen crashes on a run named `[/bold]`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from engine.events import Diagnostic, ListenerFailed, RunFailed
from engine.settings.config import to_toml
from engine.io.text import printable, shown_path
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.messages import EngineEvent
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.scalars import ScalarsApp
from tui.screens.training import TrainingScreen
from tui.widgets.diagnostic_badge import DiagnosticBadge
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart

# a window title, OSC 52, CSI and C1, markup (a folder name holds no "/": no closing tag), mathtext, a bidi override
FOLDER = "\x1b]0;pwned\x07 \x1b]52;c;aGk=\x07 \x9b2J [bold]b [link=file:x]l [red $x^2$ \u202eevil"
TEXT = "[/bold] [/] [link=https://x]l[/link] \x1b]0;pwned\x07 \x9b2J \u202eevil \\"  # an error's or a tag's text
# what markup would change: a closing tag, an escaped bracket, a last backslash (a folder's name: an opening tag)
TRICKY = "evil[/bold]\\[x]\\"
FOLDER_TRICKY = "evil[bold]\\[x]\\"


def plain(cell) -> str:
    """What a DataTable shows for a cell: a str is read as markup."""
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def shows(table: DataTable, text: str) -> bool:
    """Whether a line of the table as drawn holds `text`."""
    return any(text in table.render_line(y).text for y in range(table.size.height))


def shown(widget: Static) -> str:
    return str(widget.render())


def notices(app) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def hostile_run(runs_dir: Path, name: str, settings) -> Path:
    folder = runs_dir / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "settings.toml").write_text(to_toml(settings).replace('name = "', f"name = {json.dumps(name)} #", 1))
    rows = [{"epoch": i, "train_loss": 0.5, "val_loss": v, "train_acc": 0.9, "val_acc": 0.8, "lr": 1e-3}
            for i, v in enumerate((1.0, 0.6), 1)]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_checkpoints_and_compare_show_a_hostile_run_name_as_written(tmp_path):
    settings = tiny_settings(tmp_path)
    hostile_run(tmp_path / "runs", FOLDER, settings)
    hostile_run(tmp_path / "runs", "plain", settings.replace("training.lr", 0.01))

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("4")
            screen = app.screen
            assert isinstance(screen, CheckpointsScreen)
            runs = screen.query_one("#runs", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 2)
            names = [plain(runs.get_row_at(i)[0]) for i in range(2)]
            assert printable(FOLDER) in names
            row = names.index(printable(FOLDER))
            runs.move_cursor(row=row)
            details = screen.query_one("#ck-details", Static)
            assert await wait_for(pilot, lambda: printable(FOLDER) in shown(details))
            await pilot.press("D")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert printable(FOLDER) in shown(app.screen.query_one("#question", Static))
            await pilot.press("n")
            assert await wait_for(pilot, lambda: app.screen is screen)
            await pilot.press("m", "down" if row == 0 else "up", "m")  # both marked: a notice names them
            assert await wait_for(pilot, lambda: any(printable(FOLDER) in notice for notice in notices(app)))
            await pilot.press("c")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            compare = app.screen
            assert printable(FOLDER) in shown(compare.query_one("#cmp-title", Static))
            best = compare.query_one("#cmp-best", DataTable)
            assert printable(FOLDER) in {plain(best.get_row_at(i)[0]) for i in range(best.row_count)}
            assert printable(FOLDER) in compare.query_one("#cmp-loss", MetricChart).title_line().plain
            await pilot.pause()
            assert app.is_running

    run(scenario())


def test_the_training_screen_shows_errors_and_folders_from_events_as_written(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("3")
            screen = app.screen
            assert isinstance(screen, TrainingScreen)
            screen.post_message(EngineEvent(ListenerFailed(TEXT, TEXT)))
            screen.post_message(EngineEvent(RunFailed(TEXT, "RuntimeError", "", TEXT, 0)))
            status = screen.query_one("#run-status", Static)
            assert await wait_for(pilot, lambda: "Run failed" in shown(status))
            # the folder is a path: shown normalised (`//` once), as every path is, and as written otherwise
            assert shown(status) == f"Run failed: {printable(TEXT)}\nRun folder: {shown_path(TEXT)}"
            assert "[link=https:/x]" in shown_path(TEXT) and printable(TEXT).replace("//", "/") == shown_path(TEXT)
            assert await wait_for(pilot, lambda: any(printable(TEXT) in notice for notice in notices(app)))
            badge = screen.query_one(DiagnosticBadge)
            badge.show(Diagnostic("overfitting", TEXT))
            await pilot.pause()
            assert printable(TEXT) in shown(badge)
            assert app.is_running

    run(scenario())


def test_view_shows_hostile_csv_column_names_as_written(tmp_path):
    """Lightning CSVLogger output whose header holds escape sequences and markup: the viewer's tag list and chart."""
    log = tmp_path / "version_0" / "metrics.csv"
    log.parent.mkdir()
    with open(log, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["step", TEXT, "$x^2$"], [0, 1.0, 2.0], [1, 0.5, 1.5]])

    async def scenario():
        app = ScalarsApp(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: getattr(app.screen, "tags", None))
            tags = app.screen.query_one("#sc-tags", DataTable)
            listed = {plain(tags.get_row_at(i)[0]) for i in range(tags.row_count)}
            assert listed == {printable(TEXT), "$x^2$"}
            chart = app.screen.query_one("#sc-chart", MetricChart)
            tags.move_cursor(row=[plain(tags.get_row_at(i)[0]) for i in range(2)].index(printable(TEXT)))
            assert await wait_for(pilot, lambda: chart.title_line().plain.startswith(printable(TEXT)))
            assert app.is_running

    run(scenario())


def test_every_table_of_runs_shows_tricky_names_keys_and_values_as_written(tmp_path):
    """Brackets and backslashes as markup would eat them, drawn in each table of the checkpoints and compare screens:
    a run (folder) name, its mark, a checkpoint file, a setting's key and value."""
    settings = tiny_settings(tmp_path)
    folder = hostile_run(tmp_path / "runs", FOLDER_TRICKY, settings)
    (folder / "checkpoints" / f"epoch_{FOLDER_TRICKY}.pth").write_bytes(b"")
    with open(folder / "settings.toml", "a", encoding="utf-8") as fh:  # a table of its own: only this run has it
        fh.write(f"\n[{json.dumps(TRICKY)}]\nkey = {json.dumps(TRICKY)}\n")
    hostile_run(tmp_path / "runs", "plain", settings)

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            runs = screen.query_one("#runs", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 2)
            runs.move_cursor(row=[plain(runs.get_row_at(i)[0]) for i in range(2)].index(FOLDER_TRICKY))
            ckpts = screen.query_one("#ckpts", DataTable)
            assert await wait_for(pilot, lambda: shows(ckpts, f"epoch_{FOLDER_TRICKY}.pth"))
            assert shows(runs, FOLDER_TRICKY)
            await pilot.press("m")  # update_cell: the marked name, as written too
            assert await wait_for(pilot, lambda: shows(runs, f"+ {FOLDER_TRICKY}"))
            await pilot.press("down" if runs.cursor_row == 0 else "up", "m", "c")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            best = app.screen.query_one("#cmp-best", DataTable)
            differing = app.screen.query_one("#cmp-settings", DataTable)
            assert shows(best, FOLDER_TRICKY)
            assert shows(differing, FOLDER_TRICKY)  # a column's label
            assert shows(differing, f"{TRICKY}.key") and shows(differing, f" {TRICKY} ")  # a row's key, its value

    run(scenario())


def test_view_shows_a_tricky_tag_as_written(tmp_path):
    log = tmp_path / "version_0" / "metrics.csv"
    log.parent.mkdir()
    with open(log, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["step", TRICKY], [0, 1.0]])

    async def scenario():
        app = ScalarsApp(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: getattr(app.screen, "tags", None))
            assert shows(app.screen.query_one("#sc-tags", DataTable), f" {TRICKY} ")

    run(scenario())


def test_the_epoch_table_shows_a_tricky_diagnostic_as_written():
    """An attached run's rows come from its metrics.jsonl: the diagnostic is data."""

    class TableApp(App):
        def compose(self) -> ComposeResult:
            yield EpochTable()

    async def scenario():
        app = TableApp()
        async with app.run_test(size=(160, 10)) as pilot:
            table = app.query_one(EpochTable)
            metrics = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "train_acc": 0.9, "val_acc": 0.8, "lr": 1e-3}
            table.add_epochs([{**metrics, "seconds": 0.1, "diagnostic": TRICKY}])
            assert await wait_for(pilot, lambda: shows(table, f" {TRICKY.upper()} "))

    run(scenario())
