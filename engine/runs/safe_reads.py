"""The reader's lowest layer: a file opened safely and read within limits, JSON lines split and counted.

Every file is opened without following a link and without blocking (a FIFO, a socket or a device in its place is
refused in one line, never waited on), and read in bounded chunks: a file or a line beyond its limit is refused or
skipped, never held whole. A line that is not a JSON object (not UTF-8, NaN literals, nested beyond reason) is
skipped and counted. engine.runs.records checks each object's fields into typed records, and is where callers
import all of this from.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from engine.settings.config import SettingsError

T = TypeVar("T")
MAX_DEPTH = 32  # a run's deepest line (settings' options tables) nests under 16
MAX_LINE_BYTES = 4 * 2**20
MAX_FILE_BYTES = 2**30  # a JSON-lines file of a run: a week of epochs and progress lines is far below it
READ_CHUNK = 2**20


class RefusedFile(SettingsError):
    """A file that is not read at all (a FIFO, a device, a link, unreadable); the message is one line naming it."""


@dataclass
class Records(Generic[T]):
    """What one file held: its valid records in order, and how many lines were skipped (or why none was read)."""

    path: Path
    items: list[T] = field(default_factory=list)
    skipped: int = 0
    refused: str = ""

    def note(self) -> str:
        """One line for the user ("events.jsonl: 2 lines skipped"), or "" when the file read cleanly."""
        if self.refused:
            return self.refused
        if self.skipped:
            return f"{self.path}: {self.skipped} line{'s' if self.skipped != 1 else ''} skipped (not valid records)"
        return ""


# -- opening ---------------------------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def open_file(path: str | os.PathLike) -> int | None:
    """A read-only descriptor of the regular file at `path`; None when it does not exist.

    O_NONBLOCK and O_NOFOLLOW: a FIFO opens without waiting for a writer, a link is not followed; either is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RefusedFile(f"{path}: a symbolic link; refused (a run's files are read only as regular files)")
        if e.errno == errno.ENXIO:  # a socket, or a FIFO some systems refuse to open
            raise RefusedFile(f"{path}: not a regular file; refused")
        raise RefusedFile(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:  # a NUL in the name
        raise RefusedFile(f"{path}: not a usable file name ({e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RefusedFile(f"{path}: {_kind(mode)}, not a regular file; refused")
    return fd


def read_bytes(path: str | os.PathLike, limit: int, offset: int = 0, refuse_over: int | None = None) -> bytes | None:
    """At most `limit` bytes of a regular file from `offset`; None when it does not exist (RefusedFile else).

    `refuse_over`: a file larger is refused before any of it is read (a sparse file claims any size for free).
    """
    fd = open_file(path)
    if fd is None:
        return None
    try:
        if refuse_over is not None and os.fstat(fd).st_size > refuse_over:
            raise RefusedFile(f"{path}: larger than {refuse_over:,} bytes; refused")
        chunks, left = [], limit
        while left > 0:
            chunk = os.pread(fd, min(left, 2**24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise RefusedFile(f"{path}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def decode_text(raw: bytes) -> str:
    """Text as editors and spreadsheets write it: a BOM says UTF-8, -16 or -32; else UTF-8, else cp1252/latin-1."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            return raw.decode(encoding, errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def read_text(path: str | os.PathLike, limit: int = 256 * 2**20) -> str | None:
    """A whole text file (CSV, TOML) in the encoding it was written in; None when absent; RefusedFile when not read."""
    raw = read_bytes(path, limit + 1, refuse_over=limit)
    if raw is not None and len(raw) > limit:  # it grew since it was opened
        raise RefusedFile(f"{path}: larger than {limit:,} bytes; refused")
    return None if raw is None else decode_text(raw)


# -- JSON lines --------------------------------------------------------------------------------------------------
def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


def json_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object a line holds, or None: not UTF-8, not JSON, not an object, NaN literals, nested too deep."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(value, dict):
        return None
    if line.count(b"{") + line.count(b"[") > MAX_DEPTH and _too_deep(value):
        return None
    return value


def parse_lines(path: Path, data: bytes, record: Callable[[dict[str, Any]], T | None]) -> Records[T]:
    """Every complete line of `data` through `record`; what is not a valid record is counted as skipped."""
    out: Records[T] = Records(path)
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        obj = json_object(line)
        item = record(obj) if obj is not None else None
        if item is None:
            out.skipped += 1
        else:
            out.items.append(item)
    return out


def read_lines(path: str | os.PathLike, record: Callable[[dict[str, Any]], T | None]) -> Records[T]:
    """A JSON-lines file's valid records; a torn last line (no newline yet: a writer mid-line) is left out uncounted.

    Read in chunks, so that memory holds one chunk and one line at most: a line longer than MAX_LINE_BYTES is
    skipped unread, and a file beyond MAX_FILE_BYTES (no run writes one: a sparse or hostile file) is refused.
    """
    path = Path(path)
    try:
        fd = open_file(path)
    except RefusedFile as e:
        return Records(path, refused=str(e))
    if fd is None:
        return Records(path)
    try:
        return _lines_of(fd, path, record)
    except OSError as e:
        return Records(path, refused=f"{path}: cannot read: {e.strerror or e}")
    finally:
        os.close(fd)


def _lines_of(fd: int, path: Path, record: Callable[[dict[str, Any]], T | None]) -> Records[T]:
    out: Records[T] = Records(path)
    if os.fstat(fd).st_size > MAX_FILE_BYTES:
        out.refused = f"{path}: larger than {MAX_FILE_BYTES:,} bytes; refused (no run writes one so large)"
        return out
    partial, overlong, offset = b"", False, 0
    while chunk := os.pread(fd, READ_CHUNK, offset):
        offset += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if overlong and lines:  # the rest of a line already skipped
            lines[0], overlong = b"", False
        found = parse_lines(path, b"\n".join(lines), record)
        out.items += found.items
        out.skipped += found.skipped
        if len(partial) > MAX_LINE_BYTES:
            out.skipped += not overlong
            partial, overlong = b"", True
        if offset >= MAX_FILE_BYTES:  # the file grew while it was read
            break
    return out


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, unchecked beyond that (tests and tools look at raw lines with it)."""
    yield from read_lines(path, lambda obj: obj).items


class LineFollower(Generic[T]):
    """New complete lines of an append-only JSON-lines file, from where the last call stopped, as records.

    The writer appends whole lines; a half-written last one is held back until its newline arrives. Reading never
    locks or slows the writer. `skipped` counts the lines that were not valid records; `refused` says why the
    file could not be read at all (a FIFO in its place, ...).
    """

    def __init__(self, path: str | os.PathLike, record: Callable[[dict[str, Any]], T | None], offset: int = 0) -> None:
        self.path, self.record, self.offset = Path(path), record, offset
        self.skipped, self.refused = 0, ""
        self._partial, self._overlong = b"", False

    def read_new(self, limit: int = 64 * 2**20) -> list[T]:
        try:
            fd = open_file(self.path)
        except RefusedFile as e:
            self.refused = str(e)
            return []
        if fd is None:
            return []  # not there yet: a run still starting
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:  # rewritten from the start (never by us): read it again
                self.offset, self._partial, self._overlong = 0, b"", False
            if size == self.offset:
                return []
            data = os.pread(fd, min(size - self.offset, limit), self.offset)
        except OSError as e:
            self.refused = f"{self.path}: cannot read: {e.strerror or e}"
            return []
        finally:
            os.close(fd)
        self.offset += len(data)
        lines = (self._partial + data).rsplit(b"\n", 1)
        self._partial = lines.pop()  # b"" after a final newline, else the torn line held back
        if lines and self._overlong:  # the end of a line skipped before
            lines[0], self._overlong = lines[0].partition(b"\n")[2], False
        if len(self._partial) > MAX_LINE_BYTES:  # no newline in sight: garbage, not a line being written
            self.skipped += not self._overlong
            self._partial, self._overlong = b"", True
        if not lines:
            return []
        found = parse_lines(self.path, lines[0], self.record)
        self.skipped += found.skipped
        return found.items

    def note(self) -> str:
        return Records(self.path, skipped=self.skipped, refused=self.refused).note()
