"""Runs side by side: each one's best epochs, and the settings that differ between them (the console's comparison)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.outputs.readers import Source, read_run
from engine.runs.records import toml_tables
from engine.settings.config import SettingsError


@dataclass(frozen=True)
class Best:
    name: str
    epochs: int
    val_loss: float | None
    val_loss_epoch: int | None
    val_acc: float | None
    val_acc_epoch: int | None


def best_of(run: Source) -> Best:
    def pick(tag: str, better) -> tuple[float | None, int | None]:
        points = [(s, v) for s, v in run.tags.get(tag, []) if math.isfinite(v)]
        if not points:
            return None, None
        step, value = better(points, key=lambda p: p[1])
        return value, step

    loss, loss_epoch = pick("val_loss", min)
    acc, acc_epoch = pick("val_acc", max)
    return Best(run.name, len(run.tags.get("val_loss", [])), loss, loss_epoch, acc, acc_epoch)


def flat_settings(run_dir: Path) -> dict[str, Any]:
    """section.key -> value of a run's settings.toml, read as data only (nothing is imported)."""
    try:
        data = toml_tables(Path(run_dir) / "settings.toml")
    except SettingsError:  # refused or unreadable: the comparison shows no settings of this run
        return {}
    return {f"{s}.{k}": v for s, table in data.items() if isinstance(table, dict) for k, v in table.items()}


def differing_settings(run_dirs: list[Path]) -> dict[str, list[Any]]:
    """section.key -> each run's value, for the keys whose values are not all the same (run.name left out)."""
    flat = [flat_settings(p) for p in run_dirs]
    keys = sorted({k for f in flat for k in f} - {"run.name"})
    return {k: [f.get(k) for f in flat] for k in keys if len({repr(f.get(k)) for f in flat}) > 1}


def compare(run_dirs: list[Path]) -> tuple[list[Source], list[Best], dict[str, list[Any]]]:
    runs = [read_run(Path(p)) for p in run_dirs]
    return runs, [best_of(r) for r in runs], differing_settings([Path(p) for p in run_dirs])
