"""Text from files, as the console shows it: as written, never parsed as markup, no control character reaching
the terminal (engine.io.text.printable). Every widget that shows a run name, a path, an error, a tag or a label
from a file takes it through `data_text`; a DataTable cell too (DataTable reads a str cell as markup, and shows a
Text cell as it is)."""

from __future__ import annotations

import re

from rich.text import Text

from engine.io.text import printable


def data_text(value: object, style: str = "", *, lines: bool = False) -> Text:
    """`value` (str() of it) as plain Text: `[/bold]` is shown as written, ESC as `\\x1b`. One line, a newline
    shown as `\\n`; with `lines`, text meant to hold lines (a report, settings) keeps its newlines."""
    return Text(printable(value, keep="\n" if lines else ""), style=style)


# what Rich reads as a tag (rich.markup.RE_TAGS) with the backslashes before it; or backslashes before another "["
_BRACKET = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])|(\\+)\[")


def _escape_bracket(m: re.Match) -> str:
    if m.group(2) is not None:  # a tag: each backslash doubled, one more for the bracket (rich.markup.escape)
        return f"{m.group(1)}{m.group(1)}\\{m.group(2)}"
    return f"{m.group(3)}\\["  # Rich turns any other "\[" into "[": one more backslash keeps them all


def data_markup(value: object) -> str:
    """`value` as a whole DataTable cell read as markup that shows it as written, brackets and backslashes included.
    Only for the epoch table's diagnostic, until textual_compat.add_text_rows takes Text cells (it measures str
    cells); every other table takes `data_text` cells."""
    return _BRACKET.sub(_escape_bracket, printable(value))


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
