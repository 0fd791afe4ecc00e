"""Every use of a private name of Textual's by the console, in one place.

Textual (pinned in pyproject.toml) may change any of these in a release;
tests/tui/test_textual_compat.py fails when the behaviour relied on here
changes, so an upgrade breaks a test, not the console.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.screen import Screen
from textual.widgets import OptionList


def guard_option_list_paging() -> None:
    """PageUp/PageDown in an OptionList whose lines are not laid out yet (the command palette's list before its
    first paint) raised KeyError inside Textual and closed the console. There, paging moves to the first or last option."""
    move_page = OptionList._move_page
    if getattr(move_page, "guarded", False):
        return

    def _move_page(self: OptionList, direction: int) -> None:
        try:
            move_page(self, direction)
        except (KeyError, IndexError):
            if self.option_count:
                self.highlighted = 0 if direction < 0 else self.option_count - 1

    _move_page.guarded = True  # type: ignore[attr-defined]
    _move_page.__wrapped_original__ = move_page  # type: ignore[attr-defined]
    OptionList._move_page = _move_page  # type: ignore[method-assign]


def replace_exit_traceback(app: App, line: str) -> None:
    """After an unhandled exception Textual prints a long traceback (with locals) when it exits; print one line instead."""
    app._exit_renderables[:] = [line]


def mark_styles_current(app: App, screen: Screen) -> None:
    """Record that a newly mounted mode screen has the app's current CSS.

    Textual's switch_mode refreshes the whole app's CSS (~40-90 ms) when a
    screen's CSS count lags the app's. A mode's screen is mounted after its
    first switch has refreshed the CSS, so it never records the count, and the
    first return to it paid that refresh. Its widgets took their styles from
    that same CSS when they mounted.
    """
    count: Any = getattr(app, "_css_update_count", None)
    if isinstance(count, int) and isinstance(getattr(screen, "_css_update_count", None), int):
        screen._css_update_count = count
