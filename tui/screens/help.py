"""`?`: the keys of every screen, read from the screen table and each screen's own bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.screen_table import SCREENS

BADGES = """\
The diagnostic badge: **OK**, **OVERFITTING** (val loss or accuracy drifts away from
train), **UNDERFITTING** (train loss stays high), **NOT LEARNING** (no better than always
predicting the class priors), **DIVERGING** (train loss climbing), **NaN** (the loss
diverged), and what the gradients show: **VANISHING GRADIENTS**, **EXPLODING GRADIENTS**,
**DYING ReLU**, **SATURATED UNITS**. The red vertical line on the charts marks where
overfitting began.

`e` on the training screen explains the latest epoch's badge: the evidence that triggered
it, what it usually means and what to try (`left` / `right`: the other epochs with a badge).
Headless: `trainconsole explain RUN [EPOCH]`.
"""


def _key(binding: Binding) -> str:
    return " / ".join(f"`{k.strip()}`" for k in (binding.key_display or binding.key).split(","))


def help_text(app_bindings: list[Binding]) -> str:
    lines = ["# trainconsole", "", "| Key | Everywhere |", "|-----|------------|"]
    lines.append(f"| {' '.join(f'`{e.key}`' for e in SCREENS)} | {', '.join(e.mode for e in SCREENS)} |")
    lines += ["| `tab` / mouse | move between fields and tabs |", "| `ctrl+p` | command palette |"]
    lines += [
        f"| {_key(b)} | {b.tooltip or b.description.lower()} |"
        for b in app_bindings
        if not b.action.startswith("switch_mode")
    ]
    lines += ["", "| Key | Screen |", "|-----|--------|"]
    for entry in SCREENS:
        for b in entry.screen_class().BINDINGS:  # the footer's keys, those it leaves out for want of room, and the rest
            if isinstance(b, Binding) and (b.tooltip or b.description):
                lines.append(f"| {_key(b)} | {entry.mode}: {b.tooltip or b.description.lower()} |")
    return "\n".join(lines) + "\n\n" + BADGES


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(
                help_text(self.app.BINDINGS) + f"\nYou are on the **{self.mode}** screen. `escape` closes this help."
            )

    def action_close(self) -> None:
        self.dismiss(None)
