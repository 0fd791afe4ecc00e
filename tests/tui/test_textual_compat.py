"""What tui.textual_compat and tui.plotext_compat rely on in Textual's, plotext's and textual-plotext's private
names: each test fails when that behaviour changes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.cache import LRUCache
from textual.dom import DOMNode
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList
from textual.widgets.data_table import DuplicateKey
from textual_plotext import Plot, PlotextPlot

from pilot_helpers import run
from tui import plotext_compat, textual_compat


class HiddenList(App):
    CSS = "OptionList { display: none; }"

    def compose(self):
        yield OptionList(*[f"option {i}" for i in range(30)])


def test_paging_a_list_not_laid_out_moves_to_its_ends():
    async def scenario():
        app = HiddenList()
        async with app.run_test() as pilot:
            options = app.query_one(OptionList)
            options.highlighted = 3
            textual_compat.guard_option_list_paging()
            options.action_page_down()
            assert options.highlighted == 29
            options.action_page_up()
            assert options.highlighted == 0
            await pilot.pause()

    run(scenario())


def test_unguarded_paging_still_fails_where_the_guard_is_needed():
    """Drop the guard once Textual fixes this: the test then fails and says so."""
    guarded = OptionList._move_page
    original = getattr(guarded, "__wrapped_original__", None)

    async def scenario():
        app = HiddenList()
        async with app.run_test():
            options = app.query_one(OptionList)
            options.highlighted = 3
            try:
                original(options, 1)
            except KeyError:
                return
            raise AssertionError("Textual pages a list that is not laid out: the guard in tui.textual_compat can go")

    run(scenario())


def test_the_private_names_used_exist():
    assert callable(App._handle_exception)
    app = App()
    assert isinstance(app._exit_renderables, list)
    textual_compat.replace_exit_traceback(app, "one line")
    assert app._exit_renderables == ["one line"]
    assert isinstance(app._css_update_count, int)


def test_a_crash_is_reported_once_and_one_line_is_printed_at_exit(capsys):
    reported = []

    class Crashing(App):
        def on_mount(self) -> None:
            textual_compat.on_crash(self, lambda error: reported.append(error) or f"crashed: {error}")
            self.call_later(self.crash)

        def crash(self) -> None:
            raise RuntimeError("boom")

    async def scenario():
        async with app.run_test() as pilot:
            await pilot.pause()

    app = Crashing()
    with pytest.raises(RuntimeError, match="boom"):
        run(scenario())
    assert [str(e) for e in reported] == ["boom"] and app.return_code == 1
    assert capsys.readouterr().err.strip() == "crashed: boom"  # not Textual's traceback


class TwoModes(App):
    MODES = {"one": Screen, "two": Screen}
    DEFAULT_MODE = "one"


def test_a_marked_mode_screen_is_not_restyled_on_return_and_an_unmarked_one_is(monkeypatch):
    """Textual refreshes the whole app's CSS on a switch to a screen whose CSS count lags the app's."""

    async def returns_restyled(mark: bool) -> int:
        app = TwoModes()
        async with app.run_test() as pilot:
            await app.switch_mode("two")
            await pilot.pause()
            if mark:
                textual_compat.mark_styles_current(app, app.screen)
            await app.switch_mode("one")
            await pilot.pause()
            refreshes = []
            monkeypatch.setattr(app, "refresh_css", lambda *a, **k: refreshes.append(1))
            await app.switch_mode("two")
            await pilot.pause()
            monkeypatch.undo()
            return len(refreshes)

    async def scenario():
        assert await returns_restyled(mark=False) >= 1, "no restyle on return any more: mark_styles_current can go"
        assert await returns_restyled(mark=True) == 0

    run(scenario())


class TableApp(App):
    def compose(self):
        yield DataTable()


def _filled(table: DataTable, rows: int) -> None:
    if not table.columns:
        table.add_columns("a", "b")
    for _ in range(rows):
        n = len(table.rows)
        table.add_row(str(n), str(n * 2), key=f"row{n}")


async def _drawn_again(table: DataTable, pilot) -> None:
    for cache in textual_compat.count_keyed_caches(table):
        cache.clear()
    table.refresh()
    await pilot.pause()


def test_data_table_caches_are_lru_caches_keyed_on_the_update_count_each_added_row_bumps():
    async def scenario():
        app = TableApp()
        async with app.run_test(size=(40, 10)) as pilot:
            table = app.query_one(DataTable)
            _filled(table, 3)
            await pilot.pause()
            caches = textual_compat.count_keyed_caches(table)
            assert all(isinstance(cache, LRUCache) for cache in caches)
            count = table._update_count
            await _drawn_again(table, pilot)
            assert all(len(cache) for cache in caches)
            for cache in caches:
                for key in cache.keys():
                    assert count in (key if isinstance(key, tuple) else (key,)), key
            _filled(table, 1)
            assert table._update_count != count
            caches[0].maxsize = 2
            assert caches[0].maxsize == 2

    run(scenario())


def test_data_table_s_own_cell_key_holds_no_more_than_kept_cells_keys_on():
    """KeptCellsDataTable keys a cell on Textual's cell key less the update count, plus the width: a new part in
    Textual's key (a new thing a cell's look depends on) fails this test."""

    async def scenario():
        app = TableApp()
        async with app.run_test(size=(40, 10)) as pilot:
            table = app.query_one(DataTable)
            _filled(table, 3)
            await pilot.pause()
            await _drawn_again(table, pilot)
            keys = list(table._cell_render_cache.keys())
            rows, columns = {table._header_row_key, *table.rows}, set(table.columns)
            assert keys
            for row_key, column_key, style, cursor, hover, hover_shown, count, pseudo in keys:
                assert row_key in rows and column_key in columns and isinstance(style, Style)
                assert isinstance(cursor, bool) and isinstance(hover, bool)
                assert hover_shown == table._show_hover_cursor and pseudo == table._pseudo_class_state
                assert count == table._update_count

    run(scenario())


class KeptTable(textual_compat.KeptCellsDataTable):
    pass


def test_every_cell_drawn_goes_through_render_cell_and_is_kept_across_added_rows(monkeypatch):
    drawn = []
    original = DataTable._render_cell

    def counted(self, row, column, *args, **kwargs):
        drawn.append((row, column))
        return original(self, row, column, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_cell", counted)

    class KeptApp(App):
        def compose(self):
            yield KeptTable(cells_kept=100)

    async def scenario():
        app = KeptApp()
        async with app.run_test(size=(40, 10)) as pilot:
            table = app.query_one(KeptTable)
            table.cursor_type = "none"
            _filled(table, 3)
            await pilot.pause()
            assert {(-1, 0), (-1, 1), (0, 0), (2, 1)} <= set(drawn) and len(table.kept_cells) >= 8
            drawn.clear()
            _filled(table, 1)
            await pilot.pause()
            assert set(drawn) == {(3, 0), (3, 1)}, drawn
            text = "".join(str(table.render_line(y).text) for y in range(table.size.height))
            assert all(f"{i}  {i * 2}" in text for i in range(4)), text

    run(scenario())


def test_update_scrollbars_sizes_the_scrollbar_to_the_virtual_size():
    async def scenario():
        app = TableApp()
        async with app.run_test(size=(40, 10)) as pilot:
            table = app.query_one(DataTable)
            _filled(table, 30)
            await pilot.pause()
            assert table.show_vertical_scrollbar
            textual_compat.update_scrollbars(table, Size(table.virtual_size.width, 99))
            assert table.vertical_scrollbar.window_virtual_size == 99

    run(scenario())


def test_text_rows_added_at_once_leave_the_table_as_add_row_does():
    """The same cells added row by row and in one batch: the same rows, column widths, size, cursor, highlight
    message and drawn lines. Markup in a cell (narrower than its characters), Text (shown as it is: the widest cell
    of its column) and a short row included."""
    texts = {3: "[b]x[/b]", 5: Text("[b]as written[/b]"), 6: Text("[b]as written[/b]")}
    cells = [(str(n), f"{n * 1.5:.2f}", texts.get(n, "wide" * (n % 3)), "*" * (n % 2)) for n in range(40)]
    cells[7] = cells[7][:2]

    class Tables(App):
        CSS = "DataTable { height: 12; }"

        def compose(self):
            yield DataTable(id="by-row")
            yield DataTable(id="batch")

        def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
            highlighted.append((message.data_table.id, message.cursor_row))

    highlighted: list = []

    async def scenario():
        app = Tables()
        async with app.run_test(size=(60, 30)) as pilot:
            by_row, batch = app.query_one("#by-row", DataTable), app.query_one("#batch", DataTable)
            for table in (by_row, batch):
                table.cursor_type = "row"
                table.add_columns("n", "value", "text", "mark")
            for first, last in ((0, 25), (25, 40)):  # into an empty table, then below rows already there
                for n in range(first, last):
                    by_row.add_row(*cells[n], key=f"row{n}")
                textual_compat.add_text_rows(batch, [(f"row{n}", cells[n]) for n in range(first, last)])
                assert batch.virtual_size.height == 1 + last  # sized at once: the header and every row
                await pilot.pause()
                for table in (by_row, batch):
                    table.move_cursor(row=table.row_count - 1)
                await pilot.pause()
                assert batch.row_count == by_row.row_count == last
                assert [c.content_width for c in batch.ordered_columns] == [
                    c.content_width for c in by_row.ordered_columns
                ]
                assert batch.virtual_size == by_row.virtual_size and batch.scroll_y == by_row.scroll_y > 0
                assert batch.cursor_coordinate == by_row.cursor_coordinate
                for y in range(batch.size.height):
                    assert batch.render_line(y).text == by_row.render_line(y).text
            assert highlighted and [row for id, row in highlighted if id == "batch"] == [
                row for id, row in highlighted if id == "by-row"
            ]
            assert batch.get_row("row7") == [*cells[7], None, None]
            with pytest.raises(DuplicateKey):
                textual_compat.add_text_rows(batch, [("row40", ("40",)), ("row3", ("3",))])
            assert batch.row_count == 40  # nothing added

    run(scenario())


def test_a_footer_has_keys_once_told_its_bindings_and_shows_none_before():
    class WithFooter(App):
        BINDINGS = [("x", "bell", "Ring")]

        def compose(self):
            yield Footer()

    assert not textual_compat.footer_has_keys(Footer()) and list(Footer().compose()) == []

    async def scenario():
        app = WithFooter()
        async with app.run_test() as pilot:
            footer = app.query_one(Footer)
            await pilot.pause()
            assert textual_compat.footer_has_keys(footer)
            assert any(key.key == "x" for key in footer.query("FooterKey"))

    run(scenario())


def _own_underscore_names(cls: type) -> set[str]:
    source = inspect.getsource(cls)
    assigned = re.findall(r"self\.(_[a-z]\w*)\s*(?::[^=\n]+)?=", source)
    return {*assigned, *re.findall(r"^    (?:def )?(_[a-z]\w*)\b", source, re.M)}


def test_the_console_s_own_underscore_names_shadow_none_of_textual_s():
    """A private name of the console's on a subclass of Textual's that Textual uses too (as one may in any release)
    would silently replace theirs, or be replaced."""
    import tui.screens
    import tui.widgets

    modules = [importlib.import_module(name) for name in ("tui.app", "tui.runner")]
    for package in (tui.screens, tui.widgets):
        names = [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
        modules += [importlib.import_module(name) for name in names]
    deliberate: set[str] = set()
    checked = 0
    for module in modules:
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == module.__name__ and issubclass(cls, DOMNode)):
                continue
            base = next(c for c in cls.__mro__ if not c.__module__.startswith("tui."))
            theirs = {name for c in base.__mro__ for name in vars(c)}
            theirs |= set(re.findall(r"self\.(_[a-z]\w*)", "".join(_source(c) for c in base.__mro__)))
            clashes = (_own_underscore_names(cls) & theirs) - deliberate
            assert not clashes, f"{cls.__name__} uses {sorted(clashes)}, names {base.__name__} has too"
            checked += 1
    assert checked >= 10


def _source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


# -- plotext and textual-plotext (tui.plotext_compat) -----------------------------------------------------


def _tiny_plot() -> Plot:
    plot = Plot()
    plotext_compat.set_plot_size(plot, 16, 6)
    plot.theme("clear")
    plot.plot([1, 2, 3], [1, 2, 3], marker="*", color=(0, 130, 200))
    plot.xticks([])
    plot.yticks([])
    return plot


def test_plotext_s_matrix_holds_the_tiny_plot_bottom_row_first():
    matrix = plotext_compat.build_matrix(_tiny_plot())
    assert matrix is not None and matrix.rows == 6
    lines = ["".join(matrix.marker[row]) for row in range(matrix.rows - 1, -1, -1)]
    assert lines == [
        "┌──────────────┐",
        "│             *│",
        "│       ****** │",
        "│    ***       │",
        "│****          │",
        "└──────────────┘",
    ]
    for name in ("fullground", "style", "background"):
        assert [len(r) for r in getattr(matrix, name)] == [16] * 6, name
    stars = {tuple(fg) for row in range(6) for fg, m in zip(matrix.fullground[row], matrix.marker[row]) if m == "*"}
    assert stars == {(0, 130, 200)}


def test_the_text_read_from_the_matrix_is_what_plotext_s_ansi_parses_to():
    plot = _tiny_plot()
    text = plotext_compat.plot_text(plot)
    expected = Text.from_ansi(plot.build())
    assert text.plain == expected.plain
    assert [(text.plain[s.start : s.end], s.style) for s in text.spans if text.plain[s.start : s.end].strip()] == [
        (expected.plain[s.start : s.end], s.style) for s in expected.spans if expected.plain[s.start : s.end].strip()
    ]


def test_a_cell_s_plotext_colours_decode_to_the_rich_style():
    styles: dict = {}
    assert plotext_compat.cell_style(((0, 130, 200), "default", "default"), styles) == Style(color="#0082c8")
    bold_on_rgb = Style(color="#0082c8", bold=True, bgcolor="#010203")
    assert plotext_compat.cell_style(([0, 130, 200], "bold", (1, 2, 3)), styles) == bold_on_rgb
    assert len(styles) == 2


def test_the_figure_takes_the_size_set():
    plot = _tiny_plot()
    plotext_compat.set_plot_size(plot, 30, 9)
    lines = Text.from_ansi(plot.build()).plain.splitlines()
    assert len(lines) == 9 and {len(line) for line in lines} == {30}


def test_the_plotext_theme_follows_the_app_s_theme_when_auto():
    class PlotApp(App):
        def compose(self):
            yield PlotextPlot()

    async def scenario():
        app = PlotApp()
        async with app.run_test() as pilot:
            widget = app.query_one(PlotextPlot)
            await pilot.pause()
            assert plotext_compat.plotext_theme(widget) == f"textual-auto-{app.theme}"
            widget.plt.theme(plotext_compat.plotext_theme(widget))  # registered with plotext: no KeyError
            widget.theme = "pro"
            assert plotext_compat.plotext_theme(widget) == "pro"

    run(scenario())
