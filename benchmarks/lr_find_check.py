"""Does lr-find's suggestion train well? On digits (the default settings), 5 epochs at the suggested rate against
5 epochs at each rate of a grid, the default optimizer, each at several seeds; the table goes in BENCHMARKS.md
('Learning-rate finder').

    .venv/bin/python benchmarks/lr_find_check.py [--seeds 3] [--epochs 5]

The check: the suggestion's mean final validation accuracy is within 1 point of the best grid rate's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def final_val_acc(lr: float, seed: int, epochs: int, runs_dir: str) -> float:
    from engine.events import EpochCompleted
    from engine.settings.config import load_settings
    from engine.api import Run

    settings = load_settings(
        None, [f"training.lr={lr!r}", f"training.epochs={epochs}", f"run.seed={seed}", f"run.runs_dir='{runs_dir}'"]
    )
    epochs_seen: list[EpochCompleted] = []
    Run(settings, lambda e: epochs_seen.append(e) if isinstance(e, EpochCompleted) else None).run()
    return epochs_seen[-1].val_acc


def main() -> int:
    import torch

    from engine.settings.config import load_settings
    from engine.training.lr_find import find_lr

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = range(args.seeds)
    found, seconds = {}, {}
    for method in ("steepest", "valley"):
        started = time.perf_counter()
        found[method] = find_lr(load_settings(None, [f"lr_find.suggestion='{method}'"]))
        seconds[method] = time.perf_counter() - started
    rates = {f"{lr:g}": lr for lr in GRID}
    for method, result in found.items():
        rates[f"{result.suggestion:g} (lr-find {method})"] = result.suggestion
    rows = {}
    with tempfile.TemporaryDirectory() as runs_dir:
        for name, lr in rates.items():
            accs = [final_val_acc(lr, seed, args.epochs, runs_dir) for seed in seeds]
            rows[name] = (statistics.mean(accs), min(accs), max(accs))
            print(f"{name:>28}  {rows[name][0]:.2%}", file=sys.stderr, flush=True)
    best_grid = max(rows[f"{lr:g}"][0] for lr in GRID)
    header = f"Mean val acc after {args.epochs} epochs (seeds 0-{args.seeds - 1})"
    print(f"| Learning rate | {header} | Range | To the best |")
    print("|---|---:|---:|---:|")
    for name, (mean, low, high) in rows.items():
        print(f"| {name} | {mean:.2%} | {low:.1%}–{high:.1%} | {100 * (mean - best_grid):+.1f} |")
    for method, result in found.items():
        gap = 100 * (best_grid - rows[f"{result.suggestion:g} (lr-find {method})"][0])
        verdict = "within 1 point of" if gap <= 1 else "more than 1 point below"
        print(
            f"\n{method}: suggested {result.suggestion:g} after {len(result.points)} steps ({result.stopped}, "
            f"{seconds[method]:.1f} s): {verdict} the best grid rate"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
