"""Unsaved settings: what differs from the settings file, saving it, and the question asked before quitting or
loading another file would lose it (Save writes then goes on, Discard goes on, Cancel stays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from engine.settings.config import SettingsError, save_settings

SHOWN_KEYS = 4  # the changed keys named in the question; the rest are counted


def changed_keys(app: Any) -> list[str]:
    """The `section.name` keys whose values differ from the file as last loaded or saved (`app.saved_settings`)."""
    now = app.settings.to_dict()
    return [
        f"{section}.{name}"
        for section, values in now.items()
        for name, value in values.items()
        if app.saved_settings.get(section, {}).get(name) != value
    ]


def question(path: Path, keys: list[str]) -> str:
    named = ", ".join(keys[:SHOWN_KEYS]) + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")
    return f"Unsaved changes in {path}: {named}. Save them first?"


def save_settings_file(app: Any, path: Path, invalid: Iterable[str] = ()) -> bool:
    """Write the console's settings to `path` (atomic; comments and layout stay), saying how it went; whether saved.

    `invalid`: keys whose typed values the engine rejected, so not saved (named in the note)."""
    try:
        save_settings(app.settings, path)
    except (OSError, ValueError) as e:  # ValueError: a path the OS cannot take (a NUL byte)
        if isinstance(e, SettingsError):  # the file does not load: writing the form into it would clobber it
            app.notify(str(e), severity="error", timeout=10, markup=False)
            return False
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        message = f"not saved: cannot write {path}: {reason}; the file is unchanged"
        app.notify(message, severity="error", timeout=10, markup=False)
        return False
    app.settings_path = Path(path)
    app.saved_settings = app.settings.to_dict()
    invalid = sorted(invalid)
    note = f" ({len(invalid)} invalid field(s) not saved: {', '.join(invalid)})" if invalid else ""
    app.notify(f"saved {path}{note}", severity="warning" if note else "information", markup=False)
    return True


def settle_unsaved(app: Any, proceed: Callable[[], Any], cancelled: Callable[[], Any] | None = None) -> None:
    """`proceed()` at once when nothing is unsaved; otherwise once the user saved (and it was written) or discarded."""
    keys = changed_keys(app)
    if not keys:
        proceed()
        return
    from tui.screens.confirm import UnsavedScreen

    if isinstance(app.screen, UnsavedScreen):  # asked already (q pressed twice)
        return

    def answer(choice: str | None) -> None:
        if choice == "save" and not save_settings_file(app, app.settings_path):
            return  # the error is shown; the edits are still there to save elsewhere
        if choice in ("save", "discard"):
            proceed()
        elif cancelled is not None:
            cancelled()

    app.push_screen(UnsavedScreen(question(app.settings_path, keys)), answer)
