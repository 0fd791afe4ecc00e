"""What pruning saves: one 20-trial sweep on digits, run three ways (issue 27).

    python benchmarks/sweep.py [--trials 20] [--epochs 10] [--write]

Learning rate × width × optimizer, each sweep a real `trainconsole sweep` in a fresh folder: (a) the median
pruner, (b) the median pruner plus diagnosis-based pruning (a DIVERGING, NaN or NOT LEARNING epoch prunes its trial
at once), (c) no pruning at all. For each: the best value reached, the sweep's wall time, the trials by state, and
when it first reached a value as good as the unpruned sweep's best (read from the study's own trial end times).
The goal: the unpruned best in at most half the unpruned wall time. --write puts the table into BENCHMARKS.md
(section "Sweeps: pruning on digits"); BENCH_QUICK=1 makes it 6 trials of 3 epochs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]
from report_section import REPORT, write_section  # noqa: E402 (benchmarks/ is the script's folder)

SECTION = "## Sweeps: pruning on digits"
SCRIPT = Path(sys.executable).parent / "trainconsole"
STUDY = "bench"
WAYS = (  # (name, [sweep] pruner, prune_on_diagnosis)
    ("median pruner", "median", "false"),
    ("median + diagnosis", "median", "true"),
    ("no pruning", "none", "false"),
)
SETTINGS = """\
[run]
runs_dir = "runs"
name = "{study}"
seed = 0
[device]
device = "cpu"
threads = 1
[data]
batch_size = 8
[training]
epochs = {epochs}
monitor = "val_loss"
[sweep]
trials = {trials}
sampler = "tpe"
pruner = "{pruner}"
prune_on_diagnosis = {diagnosis}
[sweep.space]
"training.lr" = {{log_uniform = [1e-5, 1.0]}}
"model.hidden" = {{choice = [[16], [64], [256, 128]]}}
"training.optimizer" = {{choice = ["adam", "sgd"]}}
"""


@dataclass(frozen=True)
class Sweep:
    name: str
    wall_s: float
    best: float | None
    counts: dict[str, int]
    trials: tuple[tuple[int, int, float | None, float | None], ...]  # (number, epochs, value, seconds at its end)
    load: float = 0.0  # the machine's 1-minute load average as the sweep started

    @property
    def epochs(self) -> int:
        return sum(epochs for _, epochs, _, _ in self.trials)

    def reached(self, target: float) -> tuple[float, int] | None:
        """(seconds, epochs trained so far) when a complete trial's value was first as good as `target` (val_loss:
        as low); one worker runs the trials one after another, in the order of their numbers."""
        epochs = 0
        for _, trial_epochs, value, at in sorted(self.trials):
            epochs += trial_epochs
            if value is not None and at is not None and value <= target:
                return at, epochs
        return None


def run_sweep(work: Path, name: str, pruner: str, diagnosis: str, trials: int, epochs: int) -> Sweep:
    work.mkdir(parents=True)
    text = SETTINGS.format(study=STUDY, epochs=epochs, trials=trials, pruner=pruner, diagnosis=diagnosis)
    (work / "sweep.toml").write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    started_at = datetime.datetime.now()
    start = time.perf_counter()
    done = subprocess.run([str(SCRIPT), "sweep", "-c", "sweep.toml", "--json"], cwd=work, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: trainconsole sweep exited {done.returncode}:\n{done.stderr[-3000:]}")
    return dataclasses.replace(read_study(work / "runs" / STUDY, name, wall, started_at), load=load)


def read_study(sweep_dir: Path, name: str, wall: float, started_at: datetime.datetime) -> Sweep:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep_dir / 'study.db'}")
    counts: dict[str, int] = {}
    trials = []
    for t in study.trials:
        state = t.state.name.lower()
        key = f"pruned ({t.user_attrs.get('prune_reason', 'pruner')})" if state == "pruned" else state
        counts[key] = counts.get(key, 0) + 1
        complete = state == "complete" and t.value is not None and t.datetime_complete is not None
        at = (t.datetime_complete - started_at).total_seconds() if complete else None
        trials.append((t.number, int(t.user_attrs.get("epochs", 0) or 0), float(t.value) if complete else None, at))
    best = min((value for _, _, value, _ in trials if value is not None), default=None)
    return Sweep(name, wall, best, counts, tuple(trials))


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True)
    return done.stdout.strip() + (" (with uncommitted changes in the tree)" if dirty.stdout.strip() else "")


def report(sweeps: list[Sweep], trials: int, epochs: int, loads: tuple[float, float]) -> str:
    unpruned = sweeps[-1]
    target = unpruned.best
    rows = []
    for s in sweeps:
        found = s.reached(target) if target is not None else None
        reached = "—"
        if found is not None:
            at, spent = found
            reached = f"{at:.0f} s ({at / unpruned.wall_s:.0%}), {spent} epochs ({spent / unpruned.epochs:.0%})"
        best = "—" if s.best is None else f"{s.best:.4f}"
        states = ", ".join(f"{n} {k}" for k, n in sorted(s.counts.items()))
        rows.append(f"| {s.name} | {best} | {s.wall_s:.0f} s | {s.load:.1f} | {s.epochs} | {reached} | {states} |")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return "\n".join([
        SECTION,
        "",
        "<!-- written by `python benchmarks/sweep.py --write` -->",
        f"Commit {commit()}; {cpu or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.date.today()}; 1-minute load {loads[0]:.2f} at the start, {loads[1]:.2f} at the end (a shared "
        "machine: other processes took its cores at times, so the wall times are rough).",
        f"One `trainconsole sweep` of {trials} trials on digits ({epochs} epochs each, batch 8, one thread, the "
        "chapter's MLP), TPE over training.lr (log-uniform 1e-5 to 1) × model.hidden ([16], [64], [256, 128]) × "
        "training.optimizer (adam, sgd), monitor val_loss (lower is better), run three ways one after the other. "
        "The sampler is seeded by run.seed, so the three draw the same first (random) trials; TPE's later draws "
        "follow what each sweep has seen. *Reached* is when a complete trial first scored as well as the unpruned "
        "sweep's best, in seconds and in epochs trained so far (the epochs do not depend on the machine's load); "
        "the goal is at most half the unpruned wall time.",
        "",
        "| sweep | best val_loss | wall time | load at its start | epochs trained | reached the unpruned best: time, "
        "epochs (share of the unpruned sweep's) | trials |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--write", action="store_true", help=f"write the table into {REPORT.name}")
    args = p.parse_args(argv)
    trials, epochs = (6, 3) if os.environ.get("BENCH_QUICK") == "1" else (args.trials, args.epochs)
    if not SCRIPT.exists():
        p.error(f"{SCRIPT} is missing: install the project first (make run)")
    load = os.getloadavg()[0]
    sweeps = []
    with tempfile.TemporaryDirectory(prefix="trainconsole-bench-sweep-") as tmp:
        for i, (name, pruner, diagnosis) in enumerate(WAYS):
            print(f"sweep {i + 1} of {len(WAYS)}: {name}", flush=True)
            sweeps.append(run_sweep(Path(tmp) / f"way-{i}", name, pruner, diagnosis, trials, epochs))
    text = report(sweeps, trials, epochs, (load, os.getloadavg()[0]))
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
