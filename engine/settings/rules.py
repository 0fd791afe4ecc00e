"""The rules a settings value keeps to: types, bounds the OS and C code accept later, names, option tables.

engine.settings.config declares the fields (each with its rules in its metadata) and applies these when
settings are loaded, overridden or edited; every refusal is a one-line SettingsError naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import unicodedata
from typing import Any

from engine.settings.names import AUTO, BUILTIN_DATASETS, BUILTIN_MODELS, torchvision_model_names

DATASETS = tuple(BUILTIN_DATASETS)


MODELS = tuple(BUILTIN_MODELS)


# Bounds a value must keep to so that the OS, C code and other TOML readers accept it later in the run.
COUNT_MAX = 1_000_000  # epochs, patience, step sizes, ...: TOML integers are 64-bit, C's often 32


SEED_MAX = 2**32 - 1  # numpy's seeds stop here (torch's at 2**64 - 1)


THREADS_MAX = 1024
PROCESSES_MAX = 256  # processes per machine: more than any machine has GPUs or useful CPU shares


SIZE_MAX, LAYERS_MAX = 65_536, 64  # model.hidden and model.channels: widths and how many


NAME_BYTES_MAX = 240  # a folder name is at most 255 bytes; run.name leaves room for the -N of a taken name


PATH_BYTES_MAX, PART_BYTES_MAX = 4095, 255  # Linux PATH_MAX less the NUL, NAME_MAX


OPTIONS_DEPTH_MAX, OPTIONS_VALUES_MAX = 8, 10_000


FILE_BYTES_MAX = 2**20


TOML_INT_MIN, TOML_INT_MAX = -(2**63), 2**63 - 1


SYNTHETIC_OPTIONS = {"samples": 2000, "features": 20, "classes": 3, "noise": 0.5}


SYNTHETIC_ELEMENTS_MAX = 100_000_000  # samples x features (or classes) floats: 400 MB


def _one_line(text: str) -> str:
    """Line breaks, control characters and lone surrogates spelled as escapes: a message stays one printable line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class SettingsError(ValueError):
    """Bad settings: the message is one line naming the file, key, value and what is allowed."""

    def __init__(self, message: str):
        super().__init__(_one_line(str(message)))


class _Shown(reprlib.Repr):
    """A value as a message shows it: short, shallow, and never failing on an integer of thousands of digits."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = 80
        self.maxlevel, self.maxlist, self.maxdict = 3, 8, 8

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_shown = _Shown().repr


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_import_path(value: str) -> bool:
    module, sep, attr = value.partition(":")
    return bool(sep and module and attr and all(p.isidentifier() for p in module.split(".")) and attr.isidentifier())


def field_kind(f: dataclasses.Field) -> type:
    """The type of a settings field's values: bool, int, float, str, list (of sizes) or dict (options)."""
    return type(f.default) if f.default is not dataclasses.MISSING else type(f.default_factory())  # type: ignore[misc]


def _check_value(section: str, f: dataclasses.Field, value: Any, source: str) -> Any:
    where = f"{source}: {section}.{f.name} = {_shown(value)}"
    rules, kind = f.metadata, field_kind(f)
    if kind is list:
        return _check_sizes(where, value, rules)
    if kind is dict:
        return _check_table_values(where, _check_options(where, value), rules)
    value = _TYPE_CHECKS[kind](where, value, rules)
    _check_bounds(where, value, rules)
    _check_name(where, value, rules)
    return value


def _check_bool(where: str, value: Any, rules: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: expected true or false")
    return value


def _check_int(where: str, value: Any, rules: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{where}: expected an integer")
    return value


def _check_str(where: str, value: Any, rules: Any) -> str:
    if isinstance(value, bool) and rules.get("boolean"):  # in_memory = false, as well as "false"
        value = "true" if value else "false"
    if not isinstance(value, str):
        raise SettingsError(f"{where}: expected a string")
    _check_text(where, value)
    _check_file_name(where, value, rules)
    return value


def _check_bounds(where: str, value: Any, rules: Any) -> None:
    if "min" in rules and value < rules["min"]:
        raise SettingsError(f"{where}: must be at least {rules['min']}")
    if "min_exclusive" in rules and value <= rules["min_exclusive"]:
        raise SettingsError(f"{where}: must be greater than {rules['min_exclusive']}")
    if "max" in rules and value > rules["max"]:
        raise SettingsError(f"{where}: must be at most {rules['max']}")
    if rules.get("nonempty") and not value.strip():
        raise SettingsError(f"{where}: must not be empty")


def _check_name(where: str, value: Any, rules: Any) -> None:
    """A name from a list (choices), a device's spelling or a model's name."""
    if "choices" in rules and value not in rules["choices"]:
        if not (rules.get("importable") and is_import_path(value)):
            extra = " or package.module:function" if rules.get("importable") else ""
            raise SettingsError(
                f"{where}: unknown{_suggest(value, rules['choices'])}; allowed: {', '.join(rules['choices'])}{extra}"
            )
    if rules.get("device"):
        _check_device_spelling(where, value)
    if rules.get("model"):
        _check_model_name(where, value)


def _finite_float(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{where}: expected a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        raise SettingsError(f"{where}: expected a finite number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{where}: expected a finite number")
    return value


_TYPE_CHECKS = {  # the check of each kind of value: it returns the value as the settings hold it
    bool: _check_bool,
    int: _check_int,
    float: lambda where, value, rules: _finite_float(where, value),
    str: _check_str,
}


def _check_text(where: str, text: str) -> None:
    """Text that UTF-8 can encode and a line can hold: what settings.toml, a path and a message need."""
    if text.isprintable():
        return
    for i, c in enumerate(text):
        category = unicodedata.category(c)
        if category == "Cs":  # Python's stand-in for a byte that was not UTF-8 (an undecodable argument)
            raise SettingsError(f"{where}: not UTF-8 text ({c!r} at character {i})")
        if category in ("Cc", "Zl", "Zp"):
            raise SettingsError(f"{where}: control character {c!r} at character {i}")


def _check_file_name(where: str, value: str, rules: Any) -> None:
    size = len(value.encode("utf-8"))
    if rules.get("folder_name"):
        if value in (".", "..") or any(sep and sep in value for sep in ("/", os.sep, os.altsep)):
            raise SettingsError(f"{where}: must be a plain folder name (no '/', not '.' or '..')")
        if size > NAME_BYTES_MAX:
            limit = f"at most {NAME_BYTES_MAX} (the file system's limit less a suffix)"
            raise SettingsError(f"{where}: {size} bytes long, {limit}")
    if rules.get("path"):
        if size > PATH_BYTES_MAX:
            raise SettingsError(f"{where}: {size} bytes long, at most {PATH_BYTES_MAX}")
        if any(len(part.encode("utf-8")) > PART_BYTES_MAX for part in value.split("/")):
            raise SettingsError(f"{where}: a folder or file name in it is longer than {PART_BYTES_MAX} bytes")


def _check_sizes(where: str, value: Any, rules: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise SettingsError(f"{where}: expected a list of integers, e.g. [256, 128]")
    if len(value) > LAYERS_MAX:
        raise SettingsError(f"{where}: {len(value)} sizes, at most {LAYERS_MAX}")
    if any(v < rules["min"] for v in value):
        raise SettingsError(f"{where}: every size must be at least {rules['min']}")
    if any(v > rules["max"] for v in value):
        raise SettingsError(f"{where}: every size must be at most {rules['max']}")
    return list(value)


def _check_table_values(where: str, table: dict[str, Any], rules: Any) -> dict[str, Any]:
    """A table whose values are names from a list (data.columns's roles): each checked, in one line."""
    allowed = rules.get("values")
    for key, value in table.items() if allowed else ():
        if value not in allowed:
            raise SettingsError(f"{where}: {key} = {_shown(value)}: expected one of {', '.join(allowed)}")
    return table


def _check_options(where: str, options: Any) -> dict[str, Any]:
    """A free table of keyword arguments: plain TOML values (text, numbers, true/false, arrays, tables), bounded."""
    if not isinstance(options, dict):
        raise SettingsError(f"{where}: expected a table, e.g. {{ samples = 2000 }}")
    pending, count = [(options, 1)], 0
    while pending:  # not recursive: a nesting as deep as the caller's stack is refused, not crashed on
        value, depth = pending.pop()
        count += 1
        if count > OPTIONS_VALUES_MAX:
            raise SettingsError(f"{where}: more than {OPTIONS_VALUES_MAX} values")
        if isinstance(value, (dict, list)):
            pending.extend((v, depth + 1) for v in _option_children(where, value, depth))
        else:
            _check_plain_value(where, value)
    return dict(options)


def _option_children(where: str, value: dict | list, depth: int) -> Any:
    """The values inside an options array or table, its keys checked."""
    if depth > OPTIONS_DEPTH_MAX:
        raise SettingsError(f"{where}: arrays and tables nested more than {OPTIONS_DEPTH_MAX} deep")
    if isinstance(value, list):
        return value
    for key in value:
        if not isinstance(key, str):
            raise SettingsError(f"{where}: key {_shown(key)} is not text")
        _check_text(f"{where}: key {_shown(key)}", key)
    return value.values()


def _check_plain_value(where: str, value: Any) -> None:
    if isinstance(value, str):
        _check_text(where, value)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not TOML_INT_MIN <= value <= TOML_INT_MAX:
            raise SettingsError(f"{where}: {_shown(value)} is beyond a 64-bit integer")
    elif not (isinstance(value, float) and math.isfinite(value)):
        plain = "text, a finite number, true/false, an array or a table"
        raise SettingsError(f"{where}: {_shown(value)} is not a plain value ({plain})")


def _check_device_spelling(where: str, value: str) -> None:
    if value in ("auto", "cpu", "cuda", "mps"):
        return
    if value.startswith("cuda:") and value[5:].isascii() and value[5:].isdigit():
        return
    raise SettingsError(f"{where}: allowed: auto, cpu, cuda, cuda:N or mps")


def _check_model_name(where: str, value: str) -> None:
    if value in MODELS or value == AUTO or is_import_path(value):
        return
    names = torchvision_model_names()
    if value not in names:
        raise SettingsError(
            f"{where}: unknown model{_suggest(value, list(MODELS) + names)}; "
            "allowed: auto, mlp, cnn, a torchvision classifier (e.g. resnet18) or package.module:Class"
        )


def synthetic_options(options: dict[str, Any]) -> dict[str, Any]:
    """The synthetic dataset's options, defaults filled in and checked: a bad one is named data.options.<key>."""
    unknown = set(options) - set(SYNTHETIC_OPTIONS)
    if unknown:
        names, allowed = ", ".join(sorted(map(str, unknown))), ", ".join(SYNTHETIC_OPTIONS)
        raise SettingsError(f"data.options: unknown option(s) {names} for synthetic; allowed: {allowed}")
    chosen = {**SYNTHETIC_OPTIONS, **options}
    _check_synthetic_values(chosen)
    return chosen


def _check_synthetic_values(o: dict[str, Any], prefix: str = "") -> None:
    for key, low, high in (("samples", 10, 10_000_000), ("features", 2, 100_000), ("classes", 2, 10_000)):
        value = o[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            where = f"{prefix}data.options.{key} = {_shown(value)}"
            raise SettingsError(f"{where}: expected an integer from {low} to {high}")
    elements = o["samples"] * max(o["features"], o["classes"])
    if elements > SYNTHETIC_ELEMENTS_MAX:
        raise SettingsError(
            f"{prefix}data.options: samples x features (or classes) = {elements}, "
            f"at most {SYNTHETIC_ELEMENTS_MAX} (400 MB of float32)"
        )
    noise = o["noise"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 100:  # NaN fails both
        raise SettingsError(f"{prefix}data.options.noise = {_shown(noise)}: expected a number from 0 to 100")
