"""Text from files, as the console shows it: as written, never parsed as markup, no control character reaching
the terminal (engine.io.text.printable). Every widget that shows a run name, a path, an error, a tag or a label
from a file takes it through `data_text`; a DataTable cell too (DataTable reads a str cell as markup, and shows a
Text cell as it is)."""

from __future__ import annotations

from rich.text import Text

from engine.io.text import printable, shown_path


def data_text(value: object, style: str = "", *, lines: bool = False) -> Text:
    """`value` (str() of it) as plain Text: `[/bold]` is shown as written, ESC as `\\x1b`. One line, a newline
    shown as `\\n`; with `lines`, text meant to hold lines (a report, settings) keeps its newlines."""
    return Text(printable(value, keep="\n" if lines else ""), style=style)


def path_text(path: object, style: str = "") -> Text:
    """A path as data_text shows it, normalised as the CLI's lines show it (engine.io.text.shown_path): `runs/x`."""
    return data_text(shown_path(path), style)


def data_line(*parts: str | tuple[str, str] | Text) -> Text:
    """A line assembled from our own words (a str, or (str, style)) and data (Text from `data_text`)."""
    return Text.assemble(*parts)


class PlainNotifications:
    """For an App: every notification (screens' and widgets' `notify` end here) is plain text through `printable`,
    never markup: its message often holds a path, a run name or an error from a file."""

    def notify(self, message: str, *, title: str = "", severity="information", timeout=None, markup=True) -> None:
        super().notify(  # type: ignore[misc]
            printable(message, keep="\n"), title=printable(title), severity=severity, timeout=timeout, markup=False
        )
