"""Settings keys that were renamed: an old settings file, run folder or checkpoint still loads, with one note.

One row per renamed key, for this rename and the next ones: the table, the old and the new name, and how each
old value reads. The note is a `RenamedSetting` warning, one line, so the CLI and the console say it their way.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import tomli_w

from engine.settings.rules import SettingsError, _shown


@dataclass(frozen=True)
class Renamed:
    section: str
    old: str
    new: str
    values: tuple[tuple[Any, Any], ...]  # (old value, new value); an old value not listed is refused

    def read(self, value: Any) -> Any:
        for old, new in self.values:
            if type(value) is type(old) and value == old:  # True is not 1
                return new
        return None


RENAMED = (Renamed("training", "fused_step", "accel", ((False, "off"), (True, "auto"))),)  # issue 22


class RenamedSetting(UserWarning):
    """A setting was given by its old name and read under its new one (the message is one line)."""


Renames = dict[str, dict[str, tuple[str, Any]]]  # section -> old key -> (new key, new value)


def read_renamed(data: Any, source: str) -> tuple[Any, Renames]:
    """`data` (the tables as read) with each old key under its new name, and what was renamed.

    A table holding both names, or an old value with no reading, is a one-line SettingsError.
    Anything not a table of tables is left for the schema to refuse.
    """
    renamed: Renames = {}
    if not isinstance(data, dict):
        return data, renamed
    for rename in RENAMED:
        table = data.get(rename.section)
        if not isinstance(table, dict) or rename.old not in table:
            continue
        value = _new_value(rename, table, source)
        table = dict((rename.new, value) if k == rename.old else (k, v) for k, v in table.items())  # same place
        data = {**data, rename.section: table}
        renamed.setdefault(rename.section, {})[rename.old] = (rename.new, value)
    return data, renamed


def _new_value(rename: Renamed, table: dict[str, Any], source: str) -> Any:
    old, new = f"{rename.section}.{rename.old}", f"{rename.section}.{rename.new}"
    if rename.new in table:
        raise SettingsError(f"{source}: {old} and {new} are both set; keep {new} ({old} is its old name)")
    value = rename.read(table[rename.old])
    if value is None:
        allowed = " or ".join(_toml(old_value) for old_value, _ in rename.values)
        raise SettingsError(f"{source}: {old} = {_shown(table[rename.old])}: expected {allowed} ({old} is now {new})")
    return value


def note_renamed(renamed: Renames, source: str) -> None:
    """One RenamedSetting warning per renamed key."""
    for section, keys in renamed.items():
        for old, (new, value) in keys.items():
            note = f"{source}: {section}.{old} is now {section}.{new} (read as {new} = {_toml(value)})"
            # one place that warns: Python shows a given note once, wherever the settings were read
            warnings.warn(RenamedSetting(note))


def renamed_override(key: str, value: Any, source: str) -> tuple[str, Any]:
    """A `--set section.key=value` by an old name, as its new key and value (noted); any other as it is."""
    section, _, name = key.partition(".")
    data, renamed = read_renamed({section: {name: value}}, source)
    if not renamed:
        return key, value
    note_renamed(renamed, source)
    ((new, new_value),) = data[section].items()
    return f"{section}.{new}", new_value


def _toml(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


@contextmanager
def renamed_notes() -> Iterator[list[str]]:
    """The RenamedSetting notes of the settings read inside, as lines (once each), not as Python's warnings.

    For the console, which shows them in its own way; other warnings are shown as they would have been.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenamedSetting)
        yield notes
    for w in caught:
        if not issubclass(w.category, RenamedSetting):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        elif str(w.message) not in notes:
            notes.append(str(w.message))


def show_as_line(shown=warnings.showwarning):
    """A `warnings.showwarning` that writes a RenamedSetting note as one line, `trainconsole: <note>`, on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, RenamedSetting):
            return shown(message, category, filename, lineno, file, line)
        import sys

        print(f"trainconsole: {message}", file=file or sys.stderr)

    return show
