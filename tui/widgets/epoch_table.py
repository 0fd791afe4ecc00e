"""One row per epoch: losses, accuracies (a regression's R², MAE and RMSE), gap, lr, time, diagnostic, best."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView

from tui import textual_compat
from tui.data_text import data_text

# the rendered cells kept: a tall screen's rows (~60) by the 10 columns, and the cursor row's
CELLS_KEPT = 1_000
# the rows, lines (and cells, behind the ones above) that DataTable's own caches keep: a screen's
ROWS_KEPT = 200

COLUMNS = ("epoch", "train loss", "train acc", "val loss", "val acc", "gap", "lr", "s", "diagnostic", "best")
# a regression's accuracy columns hold its R² (and, for validation, MAE and RMSE in the target's units)
REGRESSION_COLUMNS = ("epoch", "train loss", "train R²", "val loss", "val R² · MAE · RMSE", "gap", "lr", "s",
                      "diagnostic", "best")


def _fmt(value, spec: str) -> str:
    """NaN is written to metrics.jsonl as null."""
    return "nan" if value is None or value != value else format(value, spec)


def _acc_cell(m: dict, split: str) -> str:
    """The split's accuracy, or a regression's R² (and, for validation, its MAE and RMSE in the target's units)."""
    acc, r2 = m.get(f"{split}_acc"), m.get(f"{split}_r2")
    if acc is not None or r2 is None:
        return _fmt(acc, ".1%")
    cell = f"R² {_fmt(r2, '.3f')}"
    if split == "val":
        cell += f" MAE {_fmt(m.get('val_mae'), '.4g')} RMSE {_fmt(m.get('val_rmse'), '.4g')}"
    return cell


def epoch_row(m: dict) -> tuple:
    """A metrics.jsonl record (or EpochCompleted.metrics()) as table cells."""
    tl, vl = m.get("train_loss"), m.get("val_loss")
    gap = vl - tl if tl is not None and vl is not None else None
    return (
        str(m["epoch"]),  # a positive int (engine.runs.records.epoch_record), a number as in the columns after it
        _fmt(tl, ".4f"),
        _acc_cell(m, "train"),
        _fmt(vl, ".4f"),
        _acc_cell(m, "val"),
        _fmt(gap, "+.4f"),
        _fmt(m.get("lr"), ".2e"),
        _fmt(m.get("seconds"), ".1f"),
        data_text(str(m.get("diagnostic", "")).upper()),
        "*" if m.get("is_best") else "",
    )


class EpochTable(textual_compat.KeptCellsDataTable):
    # Widget's virtual_size asks for a layout of the whole screen whenever it changes, so each
    # added row re-arranged and redrew every widget, the GIL held all along.
    virtual_size = Reactive(Size(0, 0), layout=False)

    _styled_with: tuple | None = None
    _regression = False

    def __init__(self, *args, **kwargs) -> None:
        # an epoch's cells never change once added: kept by row and column, not drawn again for every new epoch
        super().__init__(*args, cells_kept=CELLS_KEPT, **kwargs)
        # DataTable's own caches are keyed on a count every added row bumps: every epoch turns what they hold
        # into dead entries that every full garbage collection walks while a key press waits. They are emptied
        # as rows arrive (add_epochs) and hold no more than a screen.
        for cache in textual_compat.count_keyed_caches(self):
            cache.maxsize = ROWS_KEPT

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """A layout only when a scrollbar comes or goes or the columns widen; else move the scrollbar alone."""
        height = self.container_size.height
        if old.width != new.width or (old.height > height) != (new.height > height):
            self.refresh(layout=True)
        else:
            textual_compat.update_scrollbars(self, new)

    def notify_style_update(self) -> None:
        """Keep the rendered cells when the styles they were drawn with are unchanged.

        DataTable drops them on every style update, and each return to the
        training screen is one: drawing the visible cells again was a third of
        the time that key press took while a run was training.
        """
        ScrollView.notify_style_update(self)  # this widget's own style caches
        try:
            styled_with = (
                self.has_focus,
                self.rich_style,
                *(self.get_component_rich_style(name, partial=True) for name in sorted(self.COMPONENT_CLASSES)),
            )
        except KeyError:  # the component styles are not there before the first styling
            styled_with = None
        if styled_with is not None and styled_with == self._styled_with:
            self.refresh()
            return
        self._styled_with = styled_with
        self.forget_cells()
        super().notify_style_update()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)

    def add_epochs(self, rows: list[dict]) -> None:
        if rows:
            self._label_for(regression=rows[0].get("val_acc") is None and rows[0].get("val_r2") is not None)
        # in one batch: an attached run's history of a thousand epochs added row by row kept its first paint waiting
        textual_compat.add_text_rows(self, [(str(metrics["epoch"]), epoch_row(metrics)) for metrics in rows])
        for cache in textual_compat.count_keyed_caches(self):
            cache.clear()  # keyed on the count adding rows bumped: nothing in them can be read again
        self.move_cursor(row=self.row_count - 1)

    def _label_for(self, regression: bool) -> None:
        """The headers of a classification's or a regression's columns."""
        if regression == self._regression:
            return
        self._regression = regression
        for column, label in zip(self.ordered_columns, REGRESSION_COLUMNS if regression else COLUMNS):
            column.label = Text(label)
            column.content_width = max(column.content_width, column.label.cell_len)
        self.forget_cells()
        for cache in textual_compat.count_keyed_caches(self):
            cache.clear()
        self.refresh(layout=True)

    def reset(self) -> None:
        self.forget_cells()
        self.clear()
        self._label_for(regression=False)
