"""`?`: the keys of every screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# trainconsole

| Key | Everywhere |
|-----|------------|
| `1` `2` `3` `4` | environment, configuration, training, checkpoints |
| `tab` / mouse | move between fields and tabs |
| `ctrl+p` | command palette |
| `?` | this help |
| `q` | quit (asks first while a run is active, then stops it and saves last.pth) |

| Key | Screen |
|-----|--------|
| `d` | environment: focus the device picker |
| `ctrl+s` | configuration: save the settings file (atomic) |
| `ctrl+o` | configuration: load another settings file (path field) |
| `s` | training: start a run with the current settings |
| `p` | training: pause / resume |
| `x` | training: stop and save last.pth |
| `r` | checkpoints: resume the selected run from last.pth |
| `e` | checkpoints: evaluate the selected checkpoint (best.pth of a run) |
| `delete` / `D` | checkpoints: delete the selected run or checkpoint (asks first) |
| `f5` | checkpoints: refresh the list |

The diagnostic badge: **OK**, **OVERFITTING** (val loss or accuracy drifts away from
train), **UNDERFITTING** (train loss stays high), **NaN** (the loss diverged).
The red vertical line on the charts marks where overfitting began.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP + f"\nYou are on the **{self.mode}** screen. `escape` closes this help.")

    def action_close(self) -> None:
        self.dismiss(None)
