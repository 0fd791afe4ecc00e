"""The epoch table grows a row an epoch without re-arranging the whole screen."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from pilot_helpers import run, wait_for
from tui import textual_compat
from tui.widgets.epoch_table import EpochTable


class TableApp(App):
    CSS = "EpochTable { height: 8; } Static { height: 3; }"

    def compose(self) -> ComposeResult:
        yield EpochTable()
        yield Static("below the table")


def _metrics(epoch: int) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1 / epoch,
        "val_loss": 1.1 / epoch,
        "train_acc": 0.5,
        "val_acc": 0.5,
        "lr": 1e-3,
        "seconds": 0.1,
    }


def test_rows_after_the_scrollbar_appeared_need_no_layout_and_the_newest_row_shows(monkeypatch):
    layouts = []

    async def scenario():
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(EpochTable)
            original = type(app.screen)._refresh_layout
            monkeypatch.setattr(
                type(app.screen),
                "_refresh_layout",
                lambda self, *a, **k: layouts.append(len(table.rows)) or original(self, *a, **k),
            )
            for epoch in range(1, 11):  # 8 lines: the header and 7 rows fit; the 8th row brings the scrollbar, a layout
                table.add_epochs([_metrics(epoch)])
                await pilot.pause()
            assert await wait_for(pilot, lambda: table.show_vertical_scrollbar and layouts)
            layouts.clear()
            for epoch in range(11, 21):
                table.add_epochs([_metrics(epoch)])
                await pilot.pause()
            assert layouts == []
            assert table.vertical_scrollbar.window_virtual_size == table.virtual_size.height == 21  # header + 20 rows
            assert table.scroll_y == table.max_scroll_y > 0  # scrolled to the newest epoch
            assert table.cursor_row == 19
            assert "20" in "".join(str(line.text) for line in [table.render_line(y) for y in range(table.size.height)])

            table.reset()  # a new run: the table is empty and the scrollbar goes
            await pilot.pause()
            assert table.row_count == 0 and not table.show_vertical_scrollbar

    run(scenario())


def test_a_new_row_draws_its_own_cells_not_the_rows_already_shown(monkeypatch):
    from textual.widgets import DataTable

    drawn = []
    original = DataTable._render_cell
    monkeypatch.setattr(
        DataTable,
        "_render_cell",
        lambda self, row, column, *a, **k: drawn.append(row) or original(self, row, column, *a, **k),
    )

    async def scenario():
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(EpochTable)
            table.add_epochs([_metrics(e) for e in (1, 2, 3)])
            await pilot.pause()
            drawn.clear()
            table.add_epochs([_metrics(4)])
            await pilot.pause()
            # row 3 (epoch 4) is drawn, and row 2 again: the cursor moved off it
            assert set(drawn) == {2, 3}, drawn
            table.reset()
            table.add_epochs([_metrics(9)])
            await pilot.pause()
            assert "9" in str(table.render_line(1).text)  # a new run: nothing kept from the old rows

    run(scenario())


def test_after_many_epochs_the_table_keeps_about_a_screen_of_rendered_rows():
    """DataTable's caches are keyed on a count each row bumps.

    Left alone, they fill with dead rows that every full collection walks.
    """
    from tui.widgets.epoch_table import CELLS_KEPT, ROWS_KEPT

    async def scenario():
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(EpochTable)
            for start in range(1, 501, 25):
                table.add_epochs([_metrics(e) for e in range(start, start + 25)])
                await pilot.pause()
            assert table.row_count == 500
            assert [len(cache) for cache in textual_compat.count_keyed_caches(table) if len(cache) > ROWS_KEPT] == []
            assert 0 < len(table.kept_cells) <= CELLS_KEPT
            assert "500" in "".join(str(table.render_line(y).text) for y in range(table.size.height))

    run(scenario())
