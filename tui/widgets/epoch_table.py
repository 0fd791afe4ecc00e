"""One row per epoch: losses, accuracies, gap, lr, time, diagnostic, best."""

from __future__ import annotations

from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.widgets import DataTable

# the rendered cells kept: a tall screen's rows (~60) by the 10 columns, and the cursor row's
CELLS_KEPT = 1_000
# the rows, lines (and cells, behind the ones above) that DataTable's own caches keep: a screen's
ROWS_KEPT = 200

COLUMNS = ("epoch", "train loss", "train acc", "val loss", "val acc", "gap", "lr", "s", "diagnostic", "best")


def _fmt(value, spec: str) -> str:
    """NaN is written to metrics.jsonl as null."""
    return "nan" if value is None or value != value else format(value, spec)


def epoch_row(m: dict) -> tuple:
    """A metrics.jsonl record (or EpochCompleted.metrics()) as table cells."""
    tl, vl = m.get("train_loss"), m.get("val_loss")
    gap = vl - tl if tl is not None and vl is not None else None
    return (
        str(m["epoch"]), _fmt(tl, ".4f"), _fmt(m.get("train_acc"), ".1%"), _fmt(vl, ".4f"), _fmt(m.get("val_acc"), ".1%"),
        _fmt(gap, "+.4f"), _fmt(m.get("lr"), ".2e"), _fmt(m.get("seconds"), ".1f"), str(m.get("diagnostic", "")).upper(), "*" if m.get("is_best") else "",
    )


class EpochTable(DataTable):
    # Widget's virtual_size asks for a layout of the whole screen whenever it changes, so each
    # added row re-arranged and redrew every widget (~45 ms an epoch here, the GIL held all along).
    virtual_size = Reactive(Size(0, 0), layout=False)

    _styled_with: tuple | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # DataTable keys its cell cache on a count that every added row bumps, so each new epoch
        # drew every visible cell again (~0.3 ms a cell here). An epoch's cells never change once
        # added: these are kept by row, column, style, width and cursor state.
        self._cells: LRUCache = LRUCache(CELLS_KEPT)
        # DataTable's own caches are keyed on that count too: every epoch turns what they hold into
        # dead entries (10,000 cells, 1,000 rows: ~70,000 objects) that every full garbage
        # collection walks, ~60 ms while a key press waits. They are emptied as rows arrive
        # (add_epochs) and hold no more than a screen.
        for cache in self._count_keyed_caches():
            cache.maxsize = ROWS_KEPT

    def _count_keyed_caches(self) -> tuple[LRUCache, ...]:
        return (self._cell_render_cache, self._row_render_cache, self._row_renderable_cache, self._line_cache)

    def _render_cell(self, row_index: int, column_index: int, base_style, width: int, cursor: bool = False, hover: bool = False):
        row_key = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        key = (row_key, self._column_locations.get_key(column_index), base_style, width, cursor, hover, self._show_hover_cursor, self._pseudo_class_state)
        lines = self._cells.get(key)
        if lines is None:
            lines = self._cells[key] = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return lines

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """A layout only when a scrollbar comes or goes or the columns widen; else move the scrollbar alone."""
        height = self.container_size.height
        if old.width != new.width or (old.height > height) != (new.height > height):
            self.refresh(layout=True)
        else:
            self._scroll_update(new)

    def notify_style_update(self) -> None:
        """Keep the rendered cells when the styles they were drawn with are unchanged.

        DataTable drops them on every style update, and each return to the
        training screen is one: drawing the visible cells again was a third of
        the time that key press took while a run was training.
        """
        ScrollView.notify_style_update(self)  # this widget's own style caches
        try:
            styled_with = (self.has_focus, self.rich_style, *(self.get_component_rich_style(name, partial=True) for name in sorted(self.COMPONENT_CLASSES)))
        except KeyError:  # the component styles are not there before the first styling
            styled_with = None
        if styled_with is not None and styled_with == self._styled_with:
            self.refresh()
            return
        self._styled_with = styled_with
        self._cells.clear()
        super().notify_style_update()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)

    def add_epochs(self, rows: list[dict]) -> None:
        for metrics in rows:
            self.add_row(*epoch_row(metrics), key=str(metrics["epoch"]))
        for cache in self._count_keyed_caches():
            cache.clear()  # keyed on the count add_row bumped: nothing in them can be read again
        self.move_cursor(row=self.row_count - 1)

    def reset(self) -> None:
        self._cells.clear()
        self.clear()
