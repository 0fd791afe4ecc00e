"""The one reader of what lies on disk: a run folder's files and foreign logs, validated into typed records.

A run folder may come from elsewhere (copied, another user's, unpacked from an archive), so nothing read here is
trusted. Every file is opened without following a link and without blocking (a FIFO, a socket or a device in its
place is refused in one line, never waited on). A line that is not what it should be — not UTF-8, not a JSON
object, nested beyond reason, a field missing or of the wrong type, a number that is not finite or near the float
limits, a boolean where a number belongs — is skipped and counted; the rest of the file still reads. What a
caller gets is records plus a count (`Records.note()`: "events.jsonl: 2 lines skipped"), never an exception from
the file's content.

The run's own writer records a diverged value as the string "nan" or "inf" (JSON has no NaN): those read as NaN.
"""

from __future__ import annotations

import codecs
import errno
import json
import math
import os
import stat
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from engine.events import EPOCH_RECORD_FIELDS, EVENT_TYPES, Diagnostic, EpochCompleted, Event
from engine.settings.config import FILE_BYTES_MAX, Settings, SettingsError, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
MAX_DEPTH = 32  # a run's deepest line (settings' options tables) nests under 16
MAX_MAGNITUDE = 1e100  # beyond it a number is garbage, and arithmetic on it (a chart's range) overflows
MAX_LINE_BYTES = 4 * 2**20
MAX_FILE_BYTES = 2**30  # a JSON-lines file of a run: a week of epochs and progress lines is far below it
READ_CHUNK = 2**20
PID_MAX = 2**22  # Linux's PID_MAX_LIMIT; a larger pid is no process (and overflows os.kill's pid_t)
DIVERGED = {"nan": math.nan, "inf": math.nan, "-inf": math.nan}  # how the run's writer records non-finite floats


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


# -- typed fields ------------------------------------------------------------------------------------------------
def number(value: Any) -> float | None:
    """A finite float of sane size (an int too, never a bool); the writer's "nan"/"inf" as NaN; else None."""
    kind = type(value)
    if kind is float:
        return value if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE else None
    if kind is int:
        return float(value) if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE else None
    if kind is str:
        return DIVERGED.get(value)
    return None


def count(value: Any, least: int = 0) -> int | None:
    """A whole number >= least (never a bool, never a float)."""
    return value if type(value) is int and least <= value <= 2**62 else None


_ABSENT = object()


def _float_check(value: Any) -> Any:
    n = number(value)
    return _ABSENT if n is None else n


def _int_check(value: Any) -> Any:
    return value if type(value) is int and 0 <= value <= 2**62 else _ABSENT


def _str_check(value: Any) -> Any:
    return value if type(value) is str else _ABSENT


_FLOAT_CHECK = _float_check


def _checker(annotation: str) -> Callable[[Any], Any]:
    """The check of one field by its annotation; it returns the value to keep, or _ABSENT when the value is wrong."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    simple: dict[str, Callable[[Any], Any]] = {
        "int": _int_check,
        "float": _float_check,
        "str": _str_check,
        "bool": lambda v: v if type(v) is bool else _ABSENT,
        "dict[str, Any]": lambda v: v if type(v) is dict else _ABSENT,
        "Diagnostic": _diagnostic,
    }
    check = simple.get(base, lambda v: _ABSENT)
    return (lambda v: None if v is None else check(v)) if optional else check


def _diagnostic(value: Any) -> Any:
    if type(value) is not dict or type(value.get("status")) is not str or type(value.get("message", "")) is not str:
        return _ABSENT
    evidence = value.get("evidence", {})
    if type(evidence) is not dict or any(type(v) not in (int, float) for v in evidence.values()):
        return _ABSENT
    return Diagnostic(value["status"], value.get("message", ""), evidence)


def _schema(cls: type) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """(name, check, default) of each field of an event class; default MISSING for a required field."""
    return [
        (f.name, _checker(str(f.type)), f.default if f.default is not MISSING else f.default_factory)
        for f in fields(cls)
    ]


SCHEMAS = {name: (cls, _schema(cls)) for name, cls in EVENT_TYPES.items()}


def event_record(data: dict[str, Any]) -> Event | None:
    """The event a line of events.jsonl holds, every field checked; None when it is not one."""
    known = SCHEMAS.get(data.get("type"))  # type: ignore[arg-type]
    if known is None:
        return None  # garbage, or an event of a newer version: skipped either way
    cls, schema = known
    values = {}
    for name, check, default in schema:
        raw = data.get(name, _ABSENT)
        if raw is _ABSENT:
            if default is MISSING:
                return None
            continue  # the field's default (an event written by an older version)
        kind = type(raw)  # the common cases inline (attach reads every event of a long run): a plain finite float
        if kind is float and -MAX_MAGNITUDE <= raw <= MAX_MAGNITUDE and check is _FLOAT_CHECK:
            values[name] = raw
            continue
        if (kind is int and check is _int_check and 0 <= raw <= 2**62) or (kind is str and check is _str_check):
            values[name] = raw
            continue
        value = check(raw)
        if value is _ABSENT:
            return None
        values[name] = value
    if cls is EpochCompleted and values["epoch"] < 1:
        return None
    return cls(**values)


EPOCH_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "epoch": lambda v: _ABSENT if count(v, 1) is None else v,
    "diagnostic": lambda v: v if type(v) is str else _ABSENT,
    "is_best": lambda v: v if type(v) is bool else _ABSENT,
}
_EPOCH_NUMBER = _checker("float | None")


def epoch_record(data: dict[str, Any]) -> dict[str, Any] | None:
    """A line of metrics.jsonl as the record of an epoch (EPOCH_RECORD_FIELDS, each typed); None when it is not one.

    `epoch` is required (a positive integer); a missing number is None, a missing diagnostic "", is_best False.
    """
    row: dict[str, Any] = {}
    for name in EPOCH_RECORD_FIELDS:
        raw = data.get(name)
        if raw is None:
            if name == "epoch":
                return None
            row[name] = {"diagnostic": "", "is_best": False}.get(name)
            continue
        value = EPOCH_FIELD_CHECKS.get(name, _EPOCH_NUMBER)(raw)
        if value is _ABSENT:
            return None
        row[name] = value
    return row


def read_events(path: str | os.PathLike) -> Records[Event]:
    return read_lines(path, event_record)


def read_metrics(path: str | os.PathLike) -> Records[dict[str, Any]]:
    return read_lines(path, epoch_record)


def event_follower(path: str | os.PathLike, offset: int = 0) -> LineFollower[Event]:
    """A follower of events.jsonl, giving typed events."""
    return LineFollower(path, event_record, offset)


# -- status.json ---------------------------------------------------------------------------------------------
STATES = ("starting", "running", "paused", "ended")


@dataclass(frozen=True)
class StatusRecord:
    """status.json, checked: who runs the run (pid, its start time, the boot and host it runs on) and its state."""

    pid: int
    host: str
    started: float
    heartbeat: float
    state: str
    outcome: str | None = None
    pid_start: int | None = None  # /proc/<pid>/stat field 22: tells the run's process from a later one with its pid
    boot_id: str | None = None  # /proc/sys/kernel/random/boot_id: a pid from an earlier boot is no process of ours


_STATUS_SCHEMA = _schema(StatusRecord)


def _fields(schema, data: dict[str, Any]) -> dict[str, Any] | None:
    """The checked values of a flat record's fields by its schema; None when one is missing or of a wrong type."""
    values = {}
    for name, check, default in schema:
        raw = data.get(name, _ABSENT)
        value = default if raw is _ABSENT else check(raw)
        if value is _ABSENT or value is MISSING:
            return None
        values[name] = value
    return values


def status_record(data: dict[str, Any]) -> StatusRecord | None:
    values = _fields(_STATUS_SCHEMA, data)
    if values is None:
        return None
    record = StatusRecord(**values)
    if record.state not in STATES or not 1 <= record.pid <= PID_MAX or math.isnan(record.started + record.heartbeat):
        return None
    return record


def read_status_file(path: str | os.PathLike) -> Records[StatusRecord]:
    """status.json: one record, or none (absent, refused or not valid: then skipped is 1)."""
    path = Path(path)
    try:
        raw = read_bytes(path, 2**16)
    except RefusedFile as e:
        return Records(path, refused=str(e))
    if raw is None:
        return Records(path)
    return parse_lines(path, raw.replace(b"\n", b" ") + b"\n", status_record)


# -- commands.jsonl ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandRecord:
    command: str
    id: str
    time: float = 0.0
    pid: int = 0


_COMMAND_SCHEMA = _schema(CommandRecord)


def command_record(data: dict[str, Any]) -> CommandRecord | None:
    values = _fields(_COMMAND_SCHEMA, data)
    return None if values is None else CommandRecord(**values)


# -- TOML ----------------------------------------------------------------------------------------------------
def toml_tables(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML file's tables; {} when it does not exist. SettingsError (one line) when it does not read."""
    raw = read_bytes(path, FILE_BYTES_MAX + 1)
    if raw is None:
        return {}
    if len(raw) > FILE_BYTES_MAX:
        raise RefusedFile(f"{path}: larger than {FILE_BYTES_MAX} bytes, too large for a settings file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: cannot read: not UTF-8 text (byte {e.start})") from None
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise SettingsError(f"{path}: arrays or tables nested too deeply") from None
    except ValueError as e:
        raise SettingsError(f"{path}: TOML syntax error: {e}") from None


def run_settings(path: str | os.PathLike) -> Settings:
    """A run folder's settings.toml as Settings (validated; nothing imported); SettingsError in one line else."""
    return from_dict(toml_tables(path), str(path))


def settings_lines(path: str | os.PathLike) -> str:
    """A settings.toml's text for showing, without comment lines; a line saying why when it cannot be shown."""
    try:
        text = read_text(path, FILE_BYTES_MAX)
    except RefusedFile as e:
        return f"({e})"
    if text is None:
        return "(no settings.toml)"
    return "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
