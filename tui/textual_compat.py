"""Every use of a private name of Textual's by the console, in one place.

Written against Textual 8.2 (pinned in pyproject.toml). Textual may change any
of these in a release; tests/tui/test_textual_compat.py fails when the
behaviour relied on here changes, so an upgrade breaks a test, not the console.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any, Callable, Iterable, Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.cache import LRUCache
from textual.geometry import Size
from textual.render import measure
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, OptionList
from textual.widgets.data_table import DuplicateKey, Row, RowKey
from textual.widgets._data_table import default_cell_formatter


def guard_option_list_paging() -> None:
    """PageUp/PageDown in an OptionList whose lines are not laid out yet (the command palette's list before its
    first paint) raised KeyError inside Textual and closed the console. There, paging moves to the first or last
    option. Relies on OptionList's page keys calling `OptionList._move_page(direction)`."""
    move_page = OptionList._move_page
    if getattr(move_page, "guarded", False):
        return

    def _move_page(self: OptionList, direction: int) -> None:
        try:
            move_page(self, direction)
        except (KeyError, IndexError):
            if self.option_count:
                self.highlighted = 0 if direction < 0 else self.option_count - 1

    _move_page.guarded = True  # type: ignore[attr-defined]
    _move_page.__wrapped_original__ = move_page  # type: ignore[attr-defined]
    OptionList._move_page = _move_page  # type: ignore[method-assign]


def on_crash(app: App, report: Callable[[Exception], str]) -> None:
    """Call `report(error)` when an exception reaches the app unhandled (Textual then exits); the line it returns is
    printed at exit instead of Textual's long traceback with locals.

    Relies on every unhandled exception (handlers, workers, timers) going through `app._handle_exception`, looked up
    on the instance, which queues the traceback in `app._exit_renderables`.
    """
    handle = app._handle_exception

    def _handle_exception(error: Exception) -> None:
        line = report(error)
        handle(error)
        replace_exit_traceback(app, line)

    app._handle_exception = _handle_exception  # type: ignore[method-assign]


def replace_exit_traceback(app: App, line: str) -> None:
    """After an unhandled exception Textual prints a long traceback (with locals) when it exits; print one line
    instead. Relies on Textual printing `app._exit_renderables` at exit."""
    app._exit_renderables[:] = [line]


def mark_styles_current(app: App, screen: Screen) -> None:
    """Record that a newly mounted mode screen has the app's current CSS.

    Textual's switch_mode refreshes the whole app's CSS when a screen's CSS
    count lags the app's. A mode's screen is mounted after its first switch
    has refreshed the CSS, so it never records the count, and the first
    return to it paid that refresh. Its widgets took their styles from that
    same CSS when they mounted.
    """
    count: Any = getattr(app, "_css_update_count", None)
    if isinstance(count, int) and isinstance(getattr(screen, "_css_update_count", None), int):
        screen._css_update_count = count


def count_keyed_caches(table: DataTable) -> tuple[LRUCache, ...]:
    """DataTable's caches of drawn cells, rows, row renderables and lines.

    Their keys hold DataTable's update count, which every added row bumps:
    what they hold is never read again once a row is added, yet it stays
    until pushed out (10,000 cells, 1,000 rows), objects that every full
    garbage collection walks.
    """
    return (table._cell_render_cache, table._row_render_cache, table._row_renderable_cache, table._line_cache)


def update_scrollbars(widget: Widget, virtual_size: Size) -> None:
    """Resize the scrollbars to a new virtual size: what Widget does when its virtual size changes, less the layout
    of the whole screen it also asks for."""
    widget._scroll_update(virtual_size)


def add_text_rows(table: DataTable, rows: Iterable[tuple[str, Sequence[str | Text]]]) -> None:
    """Add one-line rows of cells (a str read as markup, or Text shown as it is), (key, cells) each, at the bottom of
    `table`: what `add_row` does for each, at the cost of one.

    `add_row` sets the cursor reactive for each row, and the next idle measures every cell of every new row; for a
    history of a thousand epochs that was most of the first paint. Here each column is measured on its widest cells
    only, and the table is sized at once. Relies on DataTable's row bookkeeping (`_row_locations`, `_data`, `rows`,
    `_update_count`), on `Column.content_width` being the width of a column's widest cell, and on
    `_update_dimensions(())` sizing the table from `rows` and the columns' widths, measuring no row.
    """
    keyed = [(RowKey(key), cells) for key, cells in rows]
    columns = table.ordered_columns
    keys = {key for key, _ in keyed}
    if len(keys) < len(keyed) or any(key in table._row_locations for key in keys):
        raise DuplicateKey("a row key is given twice or already in the table")
    if any(len(cells) > len(columns) for _, cells in keyed):
        raise ValueError("More values provided than there are columns.")
    was_empty = table.row_count == 0
    for index, (key, cells) in enumerate(keyed, start=table.row_count):
        table._row_locations[key] = index
        table._data[key] = {column.key: cell for column, cell in zip_longest(columns, cells)}
        table.rows[key] = Row(key, 1)
    console = table.app.console
    for position, column in enumerate(columns):
        in_column = [cells[position] for _, cells in keyed if position < len(cells)]
        column.content_width = max(column.content_width, _widest(console, in_column))
    table._update_count += 1
    # sized now, not at the next idle: a cursor moved next scrolls at once, in the same paint
    table._update_dimensions(())
    table.cursor_coordinate = table.cursor_coordinate  # clamped, as add_row does
    if was_empty and keyed and columns and table.show_cursor and table.cursor_type != "none":
        table._highlight_cursor()
    table.check_idle()


def _widest(console: Any, cells: Iterable[str | Text]) -> int:
    """The width DataTable measures the widest of these cells at. Markup only makes a cell narrower than its
    characters, so the cells are measured widest first until no other can be wider."""
    widest = 0
    for cell in sorted(cells, key=_characters, reverse=True):
        if _characters(cell) <= widest:
            break
        widest = max(widest, measure(console, default_cell_formatter(cell, wrap=False, height=1), 1))
    return widest


def _characters(cell: str | Text) -> int:
    return cell_len(cell.plain if isinstance(cell, Text) else cell)


def footer_has_keys(footer: Footer) -> bool:
    """Whether the Footer was told its screen's bindings: until then its compose shows no keys, so a rebuild that
    would show them may not be skipped."""
    return bool(footer._bindings_ready)


class KeptCellsDataTable(DataTable):
    """A DataTable for rows whose cells never change once added: drawn cells are kept by row and column key.

    DataTable keys its cell cache on its update count, which every added row
    bumps, so each new row drew every visible cell again. Here a cell is kept
    by what else Textual's own cell key holds (row and column key, style,
    cursor, hover, whether the hover cursor shows, the focus/hover pseudo-class
    state) and its width. Relies on `DataTable._render_cell` drawing every cell
    (header row -1) with these arguments. Call `forget_cells()` when rows are
    removed or the styles change.
    """

    def __init__(self, *args: Any, cells_kept: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept_cells: LRUCache = LRUCache(cells_kept)

    def forget_cells(self) -> None:
        self.kept_cells.clear()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        row_key = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (row_key, column_key, base_style, width, cursor, hover, self._show_hover_cursor, self._pseudo_class_state)
        lines = self.kept_cells.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self.kept_cells[key] = lines
        return lines
