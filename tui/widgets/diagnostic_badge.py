"""The per-epoch diagnostic: a coloured badge and the evidence behind it."""

from __future__ import annotations

from textual.widgets import Static

from tui.data_text import data_line, data_text

STATUS_CLASSES = ("-ok", "-warning", "-nan", "-idle")


class DiagnosticBadge(Static):
    """OK (green), OVERFITTING / UNDERFITTING (yellow), NaN (red), with Diagnostic.message."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("[b] NO RUN [/b]", id=id, classes="-idle", markup=True)
        self.status = "idle"

    def show(self, diagnostic) -> None:
        changed = diagnostic.status != self.status
        self.status = diagnostic.status
        if changed:
            self.remove_class(*STATUS_CLASSES)
            self.add_class({"ok": "-ok", "nan": "-nan"}.get(diagnostic.status, "-warning"))
        # a new status may need another line; the same status with new numbers is laid out as before
        # (a layout pass repaints the whole screen, and epochs may arrive several times a second)
        # an attached run's diagnostic comes from its events.jsonl: data, never markup
        label = data_text(f" {diagnostic.label} ", "bold")
        line = data_line(label, " ", data_text(diagnostic.message))
        self.update(line, layout=changed)

    def reset(self, text: str = "NO RUN") -> None:
        self.status = "idle"
        self.remove_class(*STATUS_CLASSES)
        self.add_class("-idle")
        self.update(f"[b] {text} [/b]")

