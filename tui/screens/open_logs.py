"""Ask for a folder of logs to open read-only (TensorBoard event files, Lightning CSVLogger output, run folders)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class OpenLogsScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(
                "Open logs, read-only: TensorBoard event files, Lightning CSVLogger output, run folders.\n"
                "enter opens, escape cancels"
            )
            yield Input(self.default, id="logs-path", select_on_focus=False)  # the cursor after the folder: a subfolder

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
