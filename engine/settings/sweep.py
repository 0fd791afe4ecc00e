"""The `[sweep]` table of a settings file: how many trials, the sampler, the pruner and `[sweep.space]`.

    [sweep]
    trials = 20                 # --trials overrides
    sampler = "tpe"             # tpe, random, grid (grid: only choices and stepped ranges)
    pruner = "median"           # median, hyperband, none
    prune_on_diagnosis = true   # a DIVERGING, NaN or NOT LEARNING epoch prunes its trial at once

    [sweep.space]               # one entry per setting to vary, by its dotted name
    "training.lr" = {log_uniform = [1e-4, 1e-1]}
    "model.dropout" = {uniform = [0.0, 0.5]}
    "data.batch_size" = {int = [32, 256], step = 32}
    "model.hidden" = {choice = [[128], [256, 128]]}

A run ignores the table (engine.settings.config): a sweep's file trains as it is with `trainconsole run -c`.
Every refusal is one SettingsError line naming the key; every value a trial can draw passes its setting's rules.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from engine.settings.config import SECTIONS, Settings, _read_settings_file, from_dict, load_settings, section_fields
from engine.settings.rules import COUNT_MAX, SettingsError, _check_value, _shown, _suggest, field_kind

TABLE = "sweep"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
GRID_POINTS_MAX = 100_000
CHOICES_MAX = 1_000
# settings a trial cannot vary: where its folder goes, and the processes its worker was given
FIXED = ("run.name", "run.runs_dir", "device.processes", "device.threads")

KEYS = {  # key: (default, doc), for the settings reference
    "trials": (20, "Trials of the sweep (`trainconsole sweep --trials N` overrides), 1 to 1000000."),
    "sampler": ("tpe", "How trials pick values: `tpe` (Optuna's TPE), `random`, or `grid` (every combination; only "
                "choices and stepped ranges)."),
    "pruner": ("median", "Which trials stop early: `median` (below the median of earlier trials at the same epoch), "
               "`hyperband`, or `none`."),
    "prune_on_diagnosis": (True, "Prune a trial at once when its epoch's diagnostic says DIVERGING, NaN or NOT "
                                 "LEARNING (counted apart from the pruner's decisions)."),
    "heartbeat_s": (10, "Seconds between a running trial's heartbeats in the study (1 to 3600)."),
    "grace_s": (60, "A running trial without a heartbeat for this long is failed and retried from its last.pth "
                    "(its worker died; 2 to 86400)."),
    "space": ({}, "`[sweep.space]`: one entry per setting to vary, by its dotted name: `{log_uniform = [low, "
                  "high]}`, `{uniform = [low, high]}` (optionally `step`), `{int = [low, high], step = n}` or "
                  "`{choice = [a, b, ...]}`."),
}


@dataclass(frozen=True)
class Dimension:
    """One setting a sweep varies."""

    name: str  # dotted, e.g. training.lr
    kind: str  # one of DISTRIBUTIONS
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def table(self) -> dict[str, Any]:
        """As written in [sweep.space]."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        return {**out, "step": self.step} if self.step is not None else out

    def encoded_choices(self) -> tuple[Any, ...]:
        """The choices as Optuna's categorical values (scalars): a list or table becomes its JSON text."""
        return tuple(json.dumps(c) if isinstance(c, (list, dict)) else c for c in self.choices)

    def decode(self, value: Any) -> Any:
        """A value Optuna drew, as the setting takes it."""
        if self.kind == "choice":
            return self.choices[self.encoded_choices().index(value)]
        return int(value) if self.kind == "int" else float(value)


@dataclass(frozen=True)
class SweepSettings:
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    prune_on_diagnosis: bool = True
    heartbeat_s: int = 10
    grace_s: int = 60
    space: tuple[Dimension, ...] = ()

    def space_table(self) -> dict[str, Any]:
        return {d.name: d.table() for d in self.space}


def direction(settings: Settings) -> str:
    """The run's monitor says which way is better: losses down, accuracies up."""
    return "maximize" if settings.training.monitor.endswith("_acc") else "minimize"


def load_sweep(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = (),
               trials: int | None = None) -> tuple[Settings, SweepSettings]:
    """The run settings of a sweep's file (with --set) and its [sweep] table, both checked; `trials`: --trials."""
    settings = load_settings(path, overrides)
    source = str(path) if path is not None else "defaults"
    table = _read_settings_file(path, source).get(TABLE, {}) if path is not None else {}
    if trials is not None:
        table = {**table, "trials": trials} if isinstance(table, dict) else table
        source_trials = f"--trials {trials}"
    else:
        source_trials = source
    sweep = parse_sweep(table, settings, source if trials is None else f"{source} with {source_trials}")
    return settings, sweep


def parse_sweep(table: Any, settings: Settings, source: str) -> SweepSettings:
    """The [sweep] table checked against the run's settings."""
    if not isinstance(table, dict):
        raise SettingsError(f"{source}: '{TABLE}' must be a table [{TABLE}], not {type(table).__name__}")
    for key in table:
        if key not in KEYS:
            raise SettingsError(f"{source}: unknown key {TABLE}.{key}{_suggest(key, tuple(KEYS))}; "
                                f"keys of [{TABLE}]: {', '.join(KEYS)}")
    values = {k: table.get(k, default) for k, (default, _) in KEYS.items()}
    sweep = SweepSettings(
        trials=_whole(source, "trials", values["trials"], 1, COUNT_MAX),
        sampler=_one_of(source, "sampler", values["sampler"], SAMPLERS),
        pruner=_one_of(source, "pruner", values["pruner"], PRUNERS),
        prune_on_diagnosis=_flag(source, "prune_on_diagnosis", values["prune_on_diagnosis"]),
        heartbeat_s=_whole(source, "heartbeat_s", values["heartbeat_s"], 1, 3600),
        grace_s=_whole(source, "grace_s", values["grace_s"], 2, 86_400),
        space=_space(source, values["space"], settings),
    )
    if sweep.grace_s <= sweep.heartbeat_s:
        raise SettingsError(f"{source}: {TABLE}.grace_s = {sweep.grace_s} is not above {TABLE}.heartbeat_s = "
                            f"{sweep.heartbeat_s}: a live trial would be taken for a dead one")
    if sweep.sampler == "grid":
        _check_grid(source, sweep.space)
    return sweep


def _whole(source: str, key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{source}: {TABLE}.{key} = {_shown(value)}: expected an integer from {low} to {high}")
    return value


def _one_of(source: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{source}: {TABLE}.{key} = {_shown(value)}: expected one of {', '.join(allowed)}"
                            f"{_suggest(str(value), allowed)}")
    return value


def _flag(source: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{source}: {TABLE}.{key} = {_shown(value)}: expected true or false")
    return value


def _space(source: str, space: Any, settings: Settings) -> tuple[Dimension, ...]:
    if not isinstance(space, dict):
        raise SettingsError(f"{source}: {TABLE}.space must be a table [{TABLE}.space] of settings to vary")
    if not space:
        raise SettingsError(f"{source}: [{TABLE}.space] is empty: name at least one setting to vary, e.g. "
                            '"training.lr" = {log_uniform = [1e-4, 1e-1]}')
    dims = tuple(_dimension(source, name, spec) for name, spec in space.items())
    for dim in dims:
        _check_draws(source, dim, settings)
    return dims


def _setting_field(source: str, name: str) -> tuple[str, dataclasses.Field]:
    where = f"{source}: {TABLE}.space \"{name}\""
    section, _, key = name.partition(".")
    if section not in SECTIONS or not key:
        raise SettingsError(f"{where}: not a setting (section.key, e.g. training.lr){_suggest(section, SECTIONS)}")
    fields = {f.name: f for f in section_fields(section)}
    if key not in fields:
        raise SettingsError(f"{where}: unknown setting {name}{_suggest(key, tuple(fields))}; "
                            f"keys of [{section}]: {', '.join(fields)}")
    if name in FIXED:
        raise SettingsError(f"{where}: a sweep cannot vary {name} (it is the sweep's own: {', '.join(FIXED)})")
    return section, fields[key]


def _dimension(source: str, name: str, spec: Any) -> Dimension:
    section, field_ = _setting_field(source, name)
    where = f"{source}: {TABLE}.space \"{name}\" = {_shown(spec)}"
    if not isinstance(spec, dict):
        raise SettingsError(f"{where}: expected a table such as {{log_uniform = [1e-4, 1e-1]}}")
    kinds = [k for k in spec if k != "step"]
    if len(kinds) != 1 or kinds[0] not in DISTRIBUTIONS:
        unknown = next((k for k in kinds if k not in DISTRIBUTIONS), None)
        hint = f"unknown distribution {unknown!r}{_suggest(unknown, DISTRIBUTIONS)}" if unknown else "expected one"
        raise SettingsError(f"{where}: {hint}; distributions: {', '.join(DISTRIBUTIONS)} (int and uniform take step)")
    kind, step = kinds[0], spec.get("step")
    if kind == "choice":
        return _choice(where, name, spec["choice"], step)
    return _range(where, name, kind, spec[kind], step, field_kind(field_))


def _choice(where: str, name: str, choices: Any, step: Any) -> Dimension:
    if step is not None:
        raise SettingsError(f"{where}: step is for int and uniform ranges, not choice")
    if not isinstance(choices, list) or not choices or len(choices) > CHOICES_MAX:
        raise SettingsError(f"{where}: choice takes a list of 1 to {CHOICES_MAX} values")
    dim = Dimension(name, "choice", choices=tuple(choices))
    encoded = dim.encoded_choices()
    if len(set(map(repr, encoded))) != len(encoded):
        raise SettingsError(f"{where}: a value is listed twice")
    return dim


def _range(where: str, name: str, kind: str, bounds: Any, step: Any, setting_kind: type) -> Dimension:
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
    if not numbers:
        raise SettingsError(f"{where}: {kind} takes [low, high], two numbers")
    low, high = bounds
    if kind == "int" and (setting_kind is not int or not all(isinstance(b, int) for b in bounds)):
        raise SettingsError(f"{where}: int ranges are for integer settings, with integer bounds")
    if kind != "int" and setting_kind is not float:
        raise SettingsError(f"{where}: {kind} is for number settings; use int = [low, high] or choice")
    if not low < high:
        raise SettingsError(f"{where}: low {low} is not below high {high}")
    if kind == "log_uniform" and low <= 0:
        raise SettingsError(f"{where}: log_uniform needs low above 0")
    if step is not None:
        if kind == "log_uniform":
            raise SettingsError(f"{where}: log_uniform takes no step (a stepped range is uniform or int)")
        whole = isinstance(step, int) if kind == "int" else _is_number(step)
        if not whole or isinstance(step, bool) or step <= 0 or step > high - low:
            raise SettingsError(f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'} "
                                f"no larger than high - low")
    return Dimension(name, kind, low if kind == "int" else float(low), high if kind == "int" else float(high), step)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_draws(source: str, dim: Dimension, settings: Settings) -> None:
    """Every value the dimension can give passes its setting's own rules (a range's ends bound all between)."""
    section, field_ = _setting_field(source, dim.name)
    draws = dim.choices if dim.kind == "choice" else (dim.low, dim.high)
    for value in draws:
        try:
            _check_value(section, field_, value, f"{source}: {TABLE}.space \"{dim.name}\" draws")
        except SettingsError as e:
            raise SettingsError(str(e)) from None
    for value in draws:  # and the settings it makes hold together (model.options with mlp, ...)
        apply_values(settings, {dim.name: value}, f"{source}: {TABLE}.space \"{dim.name}\" = {_shown(value)}")


def _check_grid(source: str, space: tuple[Dimension, ...]) -> None:
    points = 1
    for dim in space:
        if dim.kind == "log_uniform" or (dim.kind == "uniform" and dim.step is None):
            raise SettingsError(f"{source}: {TABLE}.sampler = \"grid\" takes only choices and stepped ranges; "
                                f"{TABLE}.space \"{dim.name}\" is a continuous {dim.kind} range")
        points *= len(grid_values(dim))
    if points > GRID_POINTS_MAX:
        raise SettingsError(f"{source}: {TABLE}.sampler = \"grid\": {points} combinations, more than "
                            f"{GRID_POINTS_MAX}")


def grid_values(dim: Dimension) -> list[Any]:
    """The values of a grid over `dim`, as Optuna's categorical or stepped values."""
    if dim.kind == "choice":
        return list(dim.encoded_choices())
    step = dim.step if dim.step is not None else 1
    count = int(math.floor((dim.high - dim.low) / step + 1e-9)) + 1
    values = [dim.low + i * step for i in range(count)]
    return [int(v) for v in values] if dim.kind == "int" else [round(v, 12) for v in values]


def apply_values(settings: Settings, values: dict[str, Any], source: str = "sweep trial") -> Settings:
    """`settings` with each dotted setting set to its value, checked as a whole."""
    data = settings.to_dict()
    for name, value in values.items():
        section, _, key = name.partition(".")
        data[section][key] = value
    return from_dict(data, source)


def reference_lines() -> list[str]:
    """The [sweep] table's part of the settings reference (engine.settings.reference)."""
    lines = ["", f"## [{TABLE}]", "",
             "`trainconsole sweep` tunes the settings above with Optuna (docs/sweeps.md); a run ignores this table.",
             ""]
    for key, (default, doc) in KEYS.items():
        shown = "{}" if key == "space" else json.dumps(default)
        lines.append(f"- **`{TABLE}.{key}`** (default `{shown}`): {doc}")
    return lines
