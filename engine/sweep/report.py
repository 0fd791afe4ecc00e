"""A sweep's end: the best trial, runs/<study>/best-settings.toml (trainconsole run -c trains from it) and Optuna's
parameter importances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.settings.config import Settings, atomic_write_text, to_toml
from engine.settings.sweep import apply_values
from engine.sweep.storage import BEST_SETTINGS, describe
from engine.sweep.study import quiet_optuna
from engine.sweep.view import SweepView, read_sweep


@dataclass(frozen=True)
class Summary:
    view: SweepView
    counts: dict[str, int]  # trials by state, prune reasons apart ("pruned:pruner", "pruned:diagnosis:nan", ...)
    best_settings: Path | None
    importances: dict[str, float] | None
    note: str  # why there are no importances, or ""

    def to_dict(self) -> dict[str, Any]:
        best = self.view.best
        return {"event": "sweep_finished", "study": self.view.study, "monitor": self.view.monitor,
                "direction": self.view.direction, "best_trial": best.number if best else None,
                "best_value": best.value if best else None, "best_params": best.params if best else None,
                "best_settings": str(self.best_settings) if self.best_settings else None,
                "counts": self.counts, "importances": self.importances, "note": self.note}


def summarize(study, base: Settings, sweep_dir: Path, storage: str | None) -> Summary:
    view = read_sweep(sweep_dir, storage, study.study_name)
    counts: dict[str, int] = {}
    for t in view.trials:
        key = f"pruned:{t.prune_reason or 'pruner'}" if t.state == "pruned" else t.state
        counts[key] = counts.get(key, 0) + 1
    best_path = write_best_settings(view, base, sweep_dir)
    importances, note = importance(study, view)
    return Summary(view, counts, best_path, importances, note)


def write_best_settings(view: SweepView, base: Settings, sweep_dir: Path) -> Path | None:
    best = view.best
    if best is None:
        return None
    settings = apply_values(base, best.params, f"trial {best.number}")
    header = (f"# trainconsole settings: the sweep {view.study}'s best trial, {best.number} "
              f"({view.monitor} {best.value:.6g}); `trainconsole run -c` trains from it.")
    path = Path(sweep_dir) / BEST_SETTINGS
    atomic_write_text(path, to_toml(settings, header))
    return path


def importance(study, view: SweepView) -> tuple[dict[str, float] | None, str]:
    complete = [t for t in view.trials if t.state == "complete"]
    if len(complete) < 2:
        return None, f"parameter importances need at least 2 complete trials ({len(complete)} completed)"
    optuna = quiet_optuna()
    try:
        found = optuna.importance.get_param_importances(study)
    except Exception as e:  # e.g. every complete trial drew the same values
        return None, f"no parameter importances: {describe(e)}"
    return {name: float(v) for name, v in found.items()}, ""
