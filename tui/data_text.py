"""Text from files, as the console shows it: as written, never parsed as markup, no control character reaching
the terminal (engine.text.printable). Every widget that shows a run name, a path, an error, a tag or a label
from a file takes it through `data_text`."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from engine.text import printable


def data_text(value: object, style: str = "") -> Text:
    """`value` (str() of it) as one line of plain Text: `[/bold]` is shown as written, ESC as `\\x1b`."""
    return Text(printable(value), style=style)


def data_markup(value: object) -> str:
    """`value` as Rich markup that shows it as written: for the few cells that must stay strings (EpochTable's rows,
    which DataTable reads as markup)."""
    return escape(printable(value))


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
