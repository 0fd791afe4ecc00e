"""The one reader of what lies on disk: a run folder's files and foreign logs, validated into typed records.

A run folder may come from elsewhere (copied, another user's, unpacked from an archive), so nothing read here is
trusted. Every file is opened without following a link and without blocking (a FIFO, a socket or a device in its
place is refused in one line, never waited on). A line that is not what it should be — not UTF-8, not a JSON
object, nested beyond reason, a field missing or of the wrong type, a number that is not finite or near the float
limits, a boolean where a number belongs — is skipped and counted; the rest of the file still reads. What a
caller gets is records plus a count (`Records.note()`: "events.jsonl: 2 lines skipped"), never an exception from
the file's content.

The run's own writer records a diverged value as the string "nan" or "inf" (JSON has no NaN): those read as NaN.
Opening a file and splitting its JSON lines is engine.runs.safe_reads; here each object's fields are checked into
typed records. Callers import both layers from here.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from engine.events import EVENT_TYPES, Diagnostic, EpochCompleted, Event, record_fields
from engine.runs.safe_reads import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    READ_CHUNK,
    LineFollower,
    Records,
    RefusedFile,
    decode_text,
    json_object,
    open_file,
    parse_lines,
    read_bytes,
    read_jsonl,
    read_lines,
    read_text,
)
from engine.settings.config import FILE_BYTES_MAX, Settings, SettingsError, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_MAGNITUDE = 1e100  # beyond it a number is garbage, and arithmetic on it (a chart's range) overflows
PID_MAX = 2**22  # Linux's PID_MAX_LIMIT; a larger pid is no process (and overflows os.kill's pid_t)
DIVERGED = {"nan": math.nan, "inf": math.nan, "-inf": math.nan}  # how the run's writer records non-finite floats

# the reader's names, both layers: callers import them from here
__all__ = [
    "DIVERGED",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "MAX_MAGNITUDE",
    "PID_MAX",
    "READ_CHUNK",
    "SCHEMAS",
    "STATES",
    "CommandRecord",
    "LineFollower",
    "Records",
    "RefusedFile",
    "StatusRecord",
    "command_record",
    "count",
    "decode_text",
    "epoch_record",
    "event_follower",
    "event_record",
    "json_object",
    "number",
    "open_file",
    "parse_lines",
    "read_bytes",
    "read_events",
    "read_jsonl",
    "read_lines",
    "read_metrics",
    "read_status_file",
    "read_text",
    "run_settings",
    "settings_lines",
    "status_record",
    "toml_tables",
]


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
    if type(evidence) is not dict:
        return _ABSENT
    numbers = {k: number(v) for k, v in evidence.items()}  # a NaN epoch's "nan" and "inf" are numbers too
    if any(type(k) is not str or n is None for k, n in numbers.items()):
        return _ABSENT
    return Diagnostic(value["status"], value.get("message", ""), numbers)


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
    """A line of metrics.jsonl as the record of an epoch (EPOCH_RECORD_FIELDS, and a regression's
    REGRESSION_FIELDS, each typed); None when it is not one.

    `epoch` is required (a positive integer); a missing number is None, a missing diagnostic "", is_best False.
    """
    row: dict[str, Any] = {}
    for name in record_fields(data):
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
    by: str = ""  # who sent it: "cli" (trainconsole stop|pause|resume), "console" (an attached one); older: ""


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
