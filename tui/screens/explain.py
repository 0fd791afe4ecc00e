"""`e` on the training screen: the latest epoch's badge explained (engine.training.advice, as `trainconsole explain`
gives it); left and right move between the epochs that had a non-OK badge."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine.events import Diagnostic
from engine.training.advice import badge_summary, explain
from tui.data_text import data_text

# an epoch's badge: (epoch, its diagnostic, whether its message and evidence were recorded)
EpochBadge = tuple[int, Diagnostic, bool]
DIALOG_WIDTH, DIALOG_FRAME = 104, 6  # columns; the frame: borders, padding and the scrollbar


def worth_showing(badges: Sequence[EpochBadge]) -> list[EpochBadge]:
    """The epochs the dialog steps through: each with a non-OK badge, and the latest whatever its badge."""
    if not badges:
        return []
    latest = max(badges, key=lambda b: b[0])
    return sorted((b for b in badges if b[1].status != "ok" or b is latest), key=lambda b: b[0])


class ExplainScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("left", "step(-1)", "Earlier badge", tooltip="the epoch of the previous non-OK badge"),
        Binding("right", "step(1)", "Later badge", tooltip="the epoch of the next non-OK badge"),
        Binding("escape,e", "close", "Close"),
    ]
    DEFAULT_CSS = """
    ExplainScreen { align: center middle; }
    #explain { width: 104; max-width: 95%; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    #explain-where { height: auto; color: $text-muted; }
    #explain-scroll { height: 1fr; }
    #explain-keys { height: 1; color: $text-muted; }
    """

    def __init__(self, badges: Sequence[EpochBadge]) -> None:
        """`badges`: every epoch's badge the training screen has seen, the latest explained first."""
        super().__init__()
        self.badges = worth_showing(badges)
        self.summary = badge_summary((epoch, d.status) for epoch, d, _ in badges)
        self.index = len(self.badges) - 1

    def compose(self) -> ComposeResult:
        with Vertical(id="explain"):
            yield Label("", id="explain-where")
            with VerticalScroll(id="explain-scroll"):
                yield Static("", id="explain-text")
            yield Label("left / right: other badges   up / down: scroll   escape: close", id="explain-keys")

    def on_mount(self) -> None:
        self.show()

    @property
    def epoch(self) -> int:
        return self.badges[self.index][0]

    def show(self) -> None:
        epoch, diagnostic, recorded = self.badges[self.index]
        # wrapped here, to the dialog's width (DEFAULT_CSS): a wrapped item keeps its indent
        width = min(DIALOG_WIDTH, self.app.size.width * 95 // 100) - DIALOG_FRAME
        lines = explain(diagnostic, epoch, recorded).lines(max(width, 20))
        # the message and the evidence come from a run's events (an attached run's file): data, never markup
        text = Text.assemble(data_text(lines[0], "bold"), "\n", data_text("\n".join(lines[1:]), lines=True))
        self.query_one("#explain-text", Static).update(text)
        where = f"Epoch {epoch}: badge {self.index + 1} of {len(self.badges)}. This run: {self.summary}"
        self.query_one("#explain-where", Label).update(data_text(where))
        self.query_one("#explain-scroll", VerticalScroll).scroll_home(animate=False)

    def action_step(self, step: int) -> None:
        index = self.index + step
        if 0 <= index < len(self.badges):
            self.index = index
            self.show()

    def action_close(self) -> None:
        self.dismiss(None)
