"""A worker's loop: take the next trial of the shared study (a waiting retry first), train it, until the study
holds its trials or the sweep is stopped. `--workers N` runs N of these in processes of their own."""

from __future__ import annotations

from pathlib import Path

from engine.settings.config import Settings
from engine.settings.sweep import SweepSettings, grid_values
from engine.sweep.study import next_trial
from engine.sweep.trial import Say, run_trial
from engine.training.control import RunControl


def budget(sweep: SweepSettings) -> int:
    """The trials that count: a grid has no more than its combinations."""
    if sweep.sampler != "grid":
        return sweep.trials
    points = 1
    for dim in sweep.space:
        points *= len(grid_values(dim))
    return min(sweep.trials, points)


def work(study, base: Settings, sweep: SweepSettings, sweep_dir: Path, control: RunControl, say: Say,
         threads: int = 0) -> dict[str, int]:
    """Trials until none is left or a stop; how many ended in each state."""
    counts: dict[str, int] = {}
    while not control.stop_requested:
        trial = next_trial(study, budget(sweep), sweep_dir)
        if trial is None:
            break
        state = run_trial(study, trial, base, sweep, sweep_dir, control, say, threads)
        counts[state] = counts.get(state, 0) + 1
    return counts
