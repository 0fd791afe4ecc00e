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


# Two runs of the same seed write the same numbers; a relative tolerance also takes text round trips (CSV, logs)
OVERLAP_RTOL = 1e-6
CURVE_TAGS = ("train_loss", "val_loss", "train_acc", "val_acc")


def same_curve(a: dict, b: dict, rtol: float = OVERLAP_RTOL) -> bool:
    """x -> y of two curves: the same y (within `rtol`) at every x both have with a finite value, and one at least."""
    shared = [x for x in a if x in b and math.isfinite(a[x]) and math.isfinite(b[x])]
    return bool(shared) and all(math.isclose(a[x], b[x], rel_tol=rtol, abs_tol=rtol * 1e-3) for x in shared)


def coinciding(series: dict[str, list[float]]) -> list[tuple[str, str]]:
    """(earlier, later) names of the series drawn on the same x values that coincide: one would hide the other.

    A later series is paired with the first one it coincides with only."""
    curves = {name: dict(enumerate(ys)) for name, ys in series.items()}
    pairs: list[tuple[str, str]] = []
    names = list(curves)
    for i, later in enumerate(names):
        earlier = next((name for name in names[:i] if same_curve(curves[name], curves[later])), None)
        if earlier is not None:
            pairs.append((earlier, later))
    return pairs


def overlapping_runs(runs: list[Source]) -> list[tuple[str, str]]:
    """(earlier, later) runs whose loss and accuracy curves coincide at every epoch they share (the same seed)."""

    def curves(run: Source) -> dict[str, dict]:
        return {tag: dict(run.tags[tag]) for tag in CURVE_TAGS if run.tags.get(tag)}

    pairs: list[tuple[str, str]] = []
    for i, later in enumerate(runs):
        mine = curves(later)
        for earlier in runs[:i]:
            theirs = curves(earlier)
            shared = set(mine) & set(theirs)
            if shared and all(same_curve(theirs[tag], mine[tag]) for tag in shared):
                pairs.append((earlier.name, later.name))
                break
    return pairs


def overlap_note(pairs: list[tuple[str, str]], noun: str = "runs") -> str:
    """`runs a and b overlap`, one clause per pair ("" for none); `noun` is what the series are."""
    lead = f"{noun} " if noun else ""
    return "; ".join(f"{lead}{a} and {b} overlap" for a, b in pairs)


def compare(run_dirs: list[Path]) -> tuple[list[Source], list[Best], dict[str, list[Any]]]:
    runs = [read_run(Path(p)) for p in run_dirs]
    return runs, [best_of(r) for r in runs], differing_settings([Path(p) for p in run_dirs])
