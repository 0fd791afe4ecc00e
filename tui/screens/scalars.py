"""`trainconsole view PATH`: every scalar tag of TensorBoard event files, Lightning CSVLogger output or run folders,
read-only; the highlighted tag charted with one series per run; a folder still being written followed live."""

from __future__ import annotations

import os
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.outputs.readers import Source, find_sources
from tui.data_text import PlainNotifications, data_text
from tui.widgets.key_footer import KeyFooter
from tui.widgets.metric_chart import MetricChart

FOLLOW_EVERY_S = 2.0  # how often the folder is looked at for new values


def folder_stamp(path: Path) -> tuple:
    """Sizes and times of every file under path: what changes when a writer appends."""
    if path.is_file():
        st = path.stat()
        return ((str(path), st.st_size, st.st_mtime_ns),)
    stamp = []
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            stamp.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(stamp))


class ScalarsScreen(Screen):
    DEFAULT_CSS = """
    ScalarsScreen #sc-body { height: 1fr; }
    ScalarsScreen #sc-tags { width: 40; height: 1fr; }
    ScalarsScreen #sc-chart { width: 1fr; height: 1fr; }
    ScalarsScreen #sc-status { height: 1; }
    """
    AUTO_FOCUS = "#sc-tags"
    BINDINGS = [
        Binding("f5", "reload", "Reload", tooltip="read the files again"),
        Binding(
            "escape,q", "close", "Close", tooltip="close the viewer (back to the checkpoints screen in the console)"
        ),
    ]

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.sources: list[Source] = []
        self.tags: list[str] = []
        self._stamp: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static(data_text(f"Reading {self.path} ..."), id="sc-status")
        with Horizontal(id="sc-body"):
            yield DataTable(id="sc-tags", cursor_type="row", zebra_stripes=True)
            yield MetricChart("", "value", id="sc-chart")
        yield KeyFooter()

    def action_close(self) -> None:
        if isinstance(self.app, ScalarsApp):
            self.app.exit()
        else:  # opened from the console's checkpoints screen
            self.dismiss()

    def on_mount(self) -> None:
        self.query_one("#sc-tags", DataTable).add_columns("tag", "runs", "last step")
        self.action_reload()
        self.set_interval(FOLLOW_EVERY_S, self.action_reload)

    def action_reload(self) -> None:
        self._read(self.path, self._stamp)

    @work(thread=True, exclusive=True, exit_on_error=False, group="read-scalars")
    def _read(self, path: Path, previous: tuple) -> None:
        stamp = folder_stamp(path)
        if stamp == previous and previous:
            return
        try:
            sources = find_sources(path)
        except Exception as e:  # a file torn mid-write, a folder gone: said, and tried again at the next look
            self.app.call_from_thread(self._status, f"{path}: {e}")
            return
        self.app.call_from_thread(self._show, sources, stamp)

    def _status(self, text: str) -> None:
        self.query_one("#sc-status", Static).update(data_text(text))  # paths, notes, errors: data

    def _show(self, sources: list[Source], stamp: tuple) -> None:
        self.sources, self._stamp = sources, stamp
        table = self.query_one("#sc-tags", DataTable)
        selected = self.selected_tag()
        self.tags = sorted({tag for s in sources for tag in s.tags})
        table.clear()
        for tag in self.tags:
            having = [s for s in sources if s.tags.get(tag)]
            last = str(max(s.tags[tag][-1][0] for s in having)) if having else "-"
            table.add_row(data_text(tag), str(len(having)), last)  # a tag from a log: data
        if selected in self.tags:
            table.move_cursor(row=self.tags.index(selected))
        kinds = ", ".join(sorted({s.kind for s in sources})) or "nothing readable"
        notes = "".join(f"; {s.note}" for s in sources if s.note)  # what the reader skipped or refused
        self._status(
            f"{self.path}: {len(sources)} run(s) ({kinds}), {len(self.tags)} tag(s); read-only, followed live{notes}"
        )
        self._chart(self.selected_tag())

    def selected_tag(self) -> str | None:
        row = self.query_one("#sc-tags", DataTable).cursor_row
        return self.tags[row] if self.tags and row is not None and 0 <= row < len(self.tags) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._chart(self.selected_tag())

    def _chart(self, tag: str | None) -> None:
        chart = self.query_one("#sc-chart", MetricChart)
        if tag is None:
            chart.clear()
            return
        having = [s for s in self.sources if s.tags.get(tag)]
        steps = sorted({step for s in having for step, _ in s.tags[tag]})
        series = {}
        for source in having:  # one series per run on the union of steps
            values = dict(source.tags[tag])
            series[source.name] = [values.get(step, float("nan")) for step in steps]
        chart.title = tag
        chart.show(steps, series)


class ScalarsApp(PlainNotifications, App):
    """The viewer on its own: `trainconsole view PATH` trains nothing and writes nothing."""

    TITLE = "trainconsole view"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = path

    def on_mount(self) -> None:
        self.push_screen(ScalarsScreen(self.path))
