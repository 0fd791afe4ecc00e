"""Crash reports: an error nobody foresaw is written whole to a file, and the user reads one line naming it."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path


def crash_folder() -> Path:
    """`$XDG_STATE_HOME/trainconsole` (`~/.local/state/trainconsole`): where crash reports go."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "trainconsole"


def write_crash_report(error: BaseException, context: str = "") -> Path | None:
    """The traceback of `error` in a new file readable only by its owner; None when no folder takes it."""
    text = f"{context}\n\n" if context else ""
    text += "".join(traceback.format_exception(type(error), error, error.__traceback__))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (crash_folder(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(text)
            return folder / name
        except OSError:
            continue
    return None


def crash_line(error: BaseException, report: Path | None, what: str = "trainconsole") -> str:
    """One line: what broke, and where the whole story is."""
    first = (str(error).strip().splitlines() or [""])[0][:200]
    where = f"the traceback is in {report}" if report else "no crash report could be written"
    return f"{what}: internal error: {type(error).__name__}{': ' + first if first else ''} ({where}; please report it)"
