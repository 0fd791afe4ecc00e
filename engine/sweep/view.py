"""A sweep as the CLI and the console show it: `read_sweep(sweep_dir)` reads the study into frozen rows.

It only reads: study.db is opened read-only and never created or migrated, and everything in it (a foreign or
half-written study, user attrs of another tool) is checked; what cannot be read is one SweepError line.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.sweep.storage import SweepError, describe, read_only_url

STATES = ("running", "complete", "pruned", "failed", "stopped", "waiting")
PRUNE_REASONS = ("pruner", "diagnosis:diverging", "diagnosis:nan", "diagnosis:not_learning", "user")

__all__ = ["SweepError", "SweepView", "TrialRow", "read_sweep"]


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # one of STATES
    params: dict[str, Any]  # dotted setting name -> the value the run used (lists for layer widths)
    value: float | None  # the final value (complete), else the last reported one
    best_value: float | None  # the trial's best reported value, in the study's direction
    epochs: int
    pruned_at: int | None
    prune_reason: str | None
    run_dir: Path | None
    retry_of: int | None = None  # the trial this one continues (stopped, or its worker died)


@dataclass(frozen=True)
class SweepView:
    study: str
    monitor: str
    direction: str  # "minimize" or "maximize"
    trials: tuple[TrialRow, ...]
    best_number: int | None
    objective: tuple[tuple[int, float, float], ...]  # (trial, its value, the best so far) of complete trials

    @property
    def best(self) -> TrialRow | None:
        return next((t for t in self.trials if t.number == self.best_number), None)


def read_sweep(sweep_dir: Path, storage: str | None = None, study: str | None = None) -> SweepView:
    """The study of `sweep_dir` (its study.db, or `storage`); `study`: its name (default: the storage's only one,
    else the folder's name)."""
    import optuna  # slow to import: only when a sweep is read

    url = storage or read_only_url(Path(sweep_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            rdb = optuna.storages.RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)
        except Exception as e:
            raise SweepError(f"{_where(sweep_dir, storage)}: cannot open the study: {describe(e)}") from None
        try:
            return _read(rdb, Path(sweep_dir), study)
        except SweepError:
            raise
        except Exception as e:  # a damaged or foreign database: SQLAlchemy's and Optuna's errors alike
            raise SweepError(f"{_where(sweep_dir, storage)}: not a readable study: {describe(e)}") from None
        finally:
            rdb.engine.dispose()


def _where(sweep_dir: Path, storage: str | None) -> str:
    return storage.split("@")[-1] if storage else str(Path(sweep_dir) / "study.db")  # no password in a message


def _read(rdb, sweep_dir: Path, study: str | None) -> SweepView:
    names = [s.study_name for s in rdb.get_all_studies()]
    name = study or (names[0] if len(names) == 1 else sweep_dir.name)
    if name not in names:
        raise SweepError(f"{_where(sweep_dir, None)}: no study named {name!r} (studies: {', '.join(names) or 'none'})")
    study_id = rdb.get_study_id_from_name(name)
    attrs = rdb.get_study_user_attrs(study_id)
    directions = rdb.get_study_directions(study_id)
    direction = "maximize" if directions and directions[0].name == "MAXIMIZE" else "minimize"
    monitor = attrs.get("monitor") if isinstance(attrs.get("monitor"), str) else "value"
    trials = tuple(_row(t, sweep_dir, direction) for t in rdb.get_all_trials(study_id, deepcopy=False))
    best_number, objective = _objective(trials, direction)
    return SweepView(name, monitor, direction, trials, best_number, objective)


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _state(trial, attrs: dict[str, Any]) -> str:
    state = trial.state.name.lower()
    if attrs.get("stopped") is True and state in ("running", "fail"):
        return "stopped"  # a stopped trial is failed in storage and continued by its retry
    return {"fail": "failed"}.get(state, state if state in STATES else "failed")


def _params(trial, attrs: dict[str, Any]) -> dict[str, Any]:
    raw = attrs.get("params_decoded")
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and all(isinstance(k, str) for k in decoded):
            return decoded
    return {k: v for k, v in trial.params.items() if isinstance(k, str)}


def _row(trial, sweep_dir: Path, direction: str) -> TrialRow:
    attrs = trial.user_attrs if isinstance(trial.user_attrs, dict) else {}
    reported = {step: v for step, v in trial.intermediate_values.items() if _number(v) is not None}
    last = reported[max(reported)] if reported else None
    value = _number(trial.value) if trial.state.name == "COMPLETE" else last
    pick = max if direction == "maximize" else min
    candidates = [*reported.values(), *([value] if value is not None else [])]
    run_name = attrs.get("run_dir")
    run_dir = sweep_dir / run_name if isinstance(run_name, str) and _plain_name(run_name) else None
    reason = attrs.get("prune_reason")
    system = trial.system_attrs if isinstance(trial.system_attrs, dict) else {}
    return TrialRow(
        number=trial.number,
        state=_state(trial, attrs),
        params=_params(trial, attrs),
        value=value,
        best_value=pick(candidates) if candidates else None,
        epochs=_count(attrs.get("epochs")) or (max(reported) if reported else 0),
        pruned_at=_count(attrs.get("pruned_at")),
        prune_reason=reason if reason in PRUNE_REASONS else None,
        run_dir=run_dir,
        retry_of=_count(system.get("failed_trial")),
    )


def _plain_name(name: str) -> bool:
    return 0 < len(name) <= 255 and "/" not in name and "\\" not in name and name not in (".", "..")


def _objective(trials: tuple[TrialRow, ...], direction: str) -> tuple[int | None, tuple]:
    best, best_number, points = None, None, []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state != "complete" or t.value is None:
            continue
        if best is None or (t.value > best if direction == "maximize" else t.value < best):
            best, best_number = t.value, t.number
        points.append((t.number, t.value, best))
    return best_number, tuple(points)
