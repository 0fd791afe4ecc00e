"""Text from files on its way to a terminal: the one place that makes it safe to show.

Run names, paths, error texts, tags, column and class names come from files others may have made. Written
as they are, an ESC or a C1 control starts an escape sequence (a new window title, the clipboard through OSC
52), a bidi override reorders what follows and a lone surrogate (an undecodable file name) stops `print`.
`printable` shows every such code point escaped, as Python's repr does: what `str.isprintable` calls
printable passes, everything else (C0, DEL, C1, format characters such as bidi overrides, separators,
surrogates, unassigned code points) becomes `\\x1b`, `\\u202e`, `\\U000e0001`. The headless CLI writes
through `TerminalStream`, so no line of it reaches the terminal otherwise; the console shows such text as
rich `Text` built from `printable` (tui.data_text), never as markup.

The lowest floor: this module imports nothing of the project.
"""

from __future__ import annotations

import os
import re
from typing import Any, TextIO

# what JSON text may hold unescaped that printable() would escape: only inside strings, as \uXXXX there
_JSON_UNSAFE = re.compile(r"[^\x20-\x7e\n\t]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: Any, keep: str = "") -> str:
    """`text` (str() of it) with every code point a terminal could act on shown escaped.

    `keep`: characters to pass as they are, "\\n\\t" for text that is meant to hold lines; by default a
    name or a path is one line, and a newline in it is shown as `\\n`.
    """
    text = str(text)
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() or c in keep else _escaped(c) for c in text)


def normal_path(path: str | os.PathLike[str]) -> str:
    """A path as the user gave it, normalised: no `.` parts, doubled or trailing slashes, `x/..` (os.path.normpath).

    A relative path stays relative, and nothing is resolved against the disk (a symlink shows as it was named).
    """
    text = os.fspath(path)
    return os.path.normpath(text) if text else text


def shown_path(path: Any) -> str:
    """A path for a line of the CLI or the console: `runs/x`, never `runs/./x` or `./runs/x/`; made printable."""
    return printable(normal_path(path) if isinstance(path, (str, os.PathLike)) else path)


def json_text(encoded: str) -> str:
    """JSON text as `printable` leaves it: DEL, C1 and other non-printable code points inside its strings as
    JSON's own \\uXXXX escapes (json.dumps leaves DEL, and with ensure_ascii=False much more, as it is)."""
    return _JSON_UNSAFE.sub(lambda m: "".join(f"\\u{u:04x}" for u in _utf16(m.group())), encoded)


def _utf16(char: str) -> list[int]:
    code = ord(char)
    if code < 0x10000:
        return [code]
    code -= 0x10000
    return [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]


class TerminalStream:
    """A text stream whose every write goes through `printable`, newlines and tabs kept.

    `write_control` is the one way past it, for the escape sequences the program itself means (the
    progress line's carriage return and erase-line). Everything else is the wrapped stream's.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream

    @classmethod
    def around(cls, stream: TextIO) -> TerminalStream:
        return stream if isinstance(stream, TerminalStream) else cls(stream)

    def write(self, text: str) -> int:
        self.stream.write(printable(text, keep="\n\t"))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def write_control(self, sequence: str) -> None:
        self.stream.write(sequence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
