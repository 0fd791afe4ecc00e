"""Training speed of two commits, measured in interleaved rounds on one machine.

    python benchmarks/interleaved.py BEFORE AFTER [--rounds 5] [--epochs 10] [--dataset digits] [--write]

Each commit is checked out in a git worktree of its own (AFTER may be WORKTREE: this working tree as it is)
and run by this repository's .venv Python with the worktree first on PYTHONPATH, so `engine` and `tui` come
from that commit. A round runs headless (`python -m engine run --json`) then the console (the app headless
through App.run_test, keys 3 then s, as benchmarks/pipelines.py does, started by tui.app.main so it sets up
what the console sets up), each mode before and after back to back; which commit goes first alternates
every round; each run starts after a sync and a few seconds' rest. --threads N fixes device.threads for
every run (the thread trial's choice is itself noisy on a shared machine). A run's rate is the median samples/s
of its epochs 2..E (the first warms up and times threads), read from its EpochCompleted events. The figure is
the median over the rounds of each round's after/before.
--write puts the rounds into BENCHMARKS.md under "## Engine shape: interleaved rounds".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
from report_section import REPORT, write_section  # noqa: E402 (benchmarks/ is the script's folder)

SECTION = "## Engine shape: interleaved rounds"
TARGET = 0.97
RUN_TIMEOUT_S = 900
MODES = ("headless", "console")
SETTLE_S = 3

# The console's own start (tui.app.main: OpenMP defaults, settings, the app), with App.run swapped for a
# headless drive: keys 3 (training screen) and s (start), then wait for the run's last event.
CONSOLE = """
import asyncio, sys, time
from pathlib import Path
import tui.app

config, events, timeout_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])

async def drive(app):
    if getattr(app, "settings_error", None):
        raise SystemExit(app.settings_error)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "s")
        deadline = time.monotonic() + timeout_s
        while not (events.exists() and ('"RunFinished"' in (text := events.read_text()) or '"RunFailed"' in text)):
            if time.monotonic() > deadline:
                raise SystemExit("the console's run did not end")
            await asyncio.sleep(0.05)

tui.app.TrainConsole.run = lambda app, *a, **k: asyncio.run(drive(app))
tui.app.main(config)
"""


# On the path after the tree: the .venv's editable install finds a module missing from the tree in this
# repository's working tree (a commit that lacks a file would run ours); its finder is taken off.
ISOLATE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
"""


def sh(*cmd, cwd=REPO, env=None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ...: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done.stdout


def environment(tree: Path, work: Path) -> dict:
    """This process's environment with the tree first on the path, then ISOLATE, and no OpenMP settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    isolate = work / "isolate"
    if not isolate.exists():
        isolate.mkdir()
        (isolate / "sitecustomize.py").write_text(ISOLATE)
    return {**env, "PYTHONPATH": os.pathsep.join([str(tree), str(isolate), *filter(None, [env.get("PYTHONPATH")])])}


def checkout(rev: str, tree: Path, work: Path) -> tuple[Path, str]:
    """A worktree at rev (or this working tree for WORKTREE), checked to be where `engine` and `tui` import from."""
    if rev == "WORKTREE":
        tree, label = REPO, sh("git", "log", "-1", "--format=%h", "HEAD").strip() + " + the working tree"
    else:
        commit = sh("git", "rev-parse", "--verify", rev + "^{commit}").strip()
        sh("git", "worktree", "add", "--detach", str(tree), commit)
        label = sh("git", "log", "-1", "--format=%h %s", commit).strip()[:72].rstrip()
    imports = "import sys, engine, tui.app; print(engine.__file__, tui.__file__, sys.meta_path, sep='\\n')"
    found = sh(PYTHON, "-c", imports, cwd=work, env=environment(tree, work))  # not cwd=REPO: -c puts the cwd first
    if "__editable__" in found:
        raise RuntimeError(f"{rev}: the editable install's finder is still on (sitecustomize not run?)")
    for module in found.splitlines()[:2]:
        if not Path(module).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"{rev}: {module} is imported, not the one in {tree}")
    return tree, label


def rate(events: list[dict]) -> tuple[float, int]:
    """Median samples/s of epochs 2.. and the threads the run ended on."""
    if failed := [e for e in events if e["type"] == "RunFailed"]:
        raise RuntimeError(f"the run failed: {failed[0].get('error')}")
    threads = [e["threads"] for e in events if e["type"] in ("RunStarted", "ThreadsChanged")]
    later = [e["samples_per_s"] for e in events if e["type"] == "EpochCompleted" and e["epoch"] > 1]
    if not later:
        raise RuntimeError("the run completed no epoch after the first")
    return statistics.median(later), threads[-1] if threads else 0


def measure(mode: str, tree: Path, args, work: Path, n: int) -> tuple[float, int]:
    """One run of the benchmark's settings in a fresh runs folder."""
    runs, config = work / f"runs-{n}", work / f"settings-{n}.toml"
    data = f'root = "{work / "data"}"\nval_fraction = 0.0\n' if args.dataset == "mnist" else ""
    config.write_text(
        f'[run]\nname = "bench"\nruns_dir = "{runs}"\nseed = 0\n[device]\ndevice = "cpu"\nthreads = {args.threads}\n'
        f'[data]\ndataset = "{args.dataset}"\n{data}[training]\nepochs = {args.epochs}\n'
    )
    env = environment(tree, work)
    settle()
    if mode == "headless":
        out = sh(PYTHON, "-m", "engine", "run", "-c", str(config), "--json", cwd=work, env=env)
        return rate([json.loads(line) for line in out.splitlines() if line.startswith("{")])
    events = runs / "bench" / "events.jsonl"
    sh(PYTHON, "-c", CONSOLE, str(config), str(events), str(RUN_TIMEOUT_S - 60), cwd=work, env=env)
    return rate([json.loads(line) for line in events.read_text().splitlines() if line.strip()])


def settle() -> None:
    """Let the previous run's written files reach the disk first: the kernel's writeback otherwise takes a core
    from the next run, which is always the other commit's in a round."""
    os.sync()
    time.sleep(SETTLE_S)


def run_rounds(trees: dict, args, work: Path) -> list[dict]:
    rounds, n = [], 0
    for r in range(args.rounds):
        started = time.monotonic()
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        row = {"first": order[0]}
        for mode in MODES:
            for side in order:
                n += 1
                row[mode, side] = measure(mode, trees[side], args, work, n)
            row[mode] = row[mode, "after"][0] / row[mode, "before"][0]
        rounds.append(row)
        print(f"round {r + 1} ({order[0]} first, {time.monotonic() - started:.0f} s)")
        for mode in MODES:
            (b, bt), (a, at) = row[mode, "before"], row[mode, "after"]
            print(f"  {mode:9}{b:>10,.0f} → {a:>8,.0f} samples/s  ×{row[mode]:.3f}  threads {bt}/{at}", flush=True)
    return rounds


def report(rounds: list[dict], labels: dict, args, load: float) -> tuple[str, dict]:
    medians = {mode: statistics.median(r[mode] for r in rounds) for mode in MODES}
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    torch = sh(PYTHON, "-c", "import importlib.metadata as m; print(m.version('torch'))").strip()
    lines = [
        SECTION,
        "",
        "<!-- written by `python benchmarks/interleaved.py BEFORE AFTER --write` -->",
        f"Before: `{labels['before']}`. After: `{labels['after']}`.",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch} on cpu, {datetime.date.today()}; "
        f"1-minute load at start {load:.2f}.",
        f"Each run: {args.dataset}, the default MLP, batch 64, {args.epochs} epochs, seed 0, "
        f"{'threads chosen by the engine' if args.threads == 0 else f'device.threads = {args.threads}'}; "
        "its samples/s is the "
        f"median of epochs 2–{args.epochs}. Headless: `python -m engine run --json`; console: the app headless "
        "(App.run_test, keys 3 then s). Which commit runs first alternates every round.",
        "",
        "| Round | first | headless before | after | × | console before | after | × | threads b/a (h, c) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        cells = [f"{r[m, s][0]:,.0f}" for m in MODES for s in ("before", "after")]
        threads = ", ".join(f"{r[m, 'before'][1]}/{r[m, 'after'][1]}" for m in MODES)
        lines.append(
            f"| {i} | {r['first']} | {cells[0]} | {cells[1]} | {r['headless']:.3f} "
            f"| {cells[2]} | {cells[3]} | {r['console']:.3f} | {threads} |"
        )
    verdict = "PASS" if min(medians.values()) >= TARGET else "FAIL"
    lines += [
        "",
        f"Median after/before over {len(rounds)} rounds: headless {medians['headless']:.3f}×, "
        f"console {medians['console']:.3f}× (target ≥ {TARGET}: {verdict}).",
    ]
    return "\n".join(lines) + "\n", medians


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="a commit")
    p.add_argument("after", help="a commit, or WORKTREE: this working tree as it is")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (the median of 2..E counts)")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits", help="mnist: generated MNIST-shaped")
    p.add_argument("--threads", type=int, default=0, help="device.threads of every run (0: the engine's choice)")
    p.add_argument("--write", action="store_true", help=f"write the rounds into {REPORT.name}")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first epoch warms up and is not counted")
    for sig in (signal.SIGTERM, signal.SIGHUP):  # as Ctrl-C: the worktrees are removed on the way out
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trainconsole-interleaved-") as tmp:
        work, trees, labels = Path(tmp), {}, {}
        try:
            for side, rev in (("before", args.before), ("after", args.after)):
                trees[side], labels[side] = checkout(rev, work / side, work)
            if args.dataset == "mnist":
                sh(PYTHON, str(REPO / "benchmarks" / "mnist_files.py"), str(work / "data"))
            rounds = run_rounds(trees, args, work)
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)
    text, medians = report(rounds, labels, args, load)
    print(f"\n{text}")
    if args.write:
        write_section(SECTION, text)
        print(f"written to {REPORT}")
    return 0 if min(medians.values()) >= TARGET else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130)
