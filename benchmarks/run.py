"""`make bench`: trainconsole against the chapter's loop, a TensorDataset loop and Lightning.

    python benchmarks/run.py [--quick] [--write]

Every measurement is its own process (`benchmarks/pipelines.py NAME ...`, one
JSON line back), so peak memory is per pipeline and no pipeline warms another.
The throughput pipelines run in alternating rounds (a b c ... a b c ...).
--quick (or BENCH_QUICK=1) makes every measurement tiny: a smoke run of a
minute or two whose numbers mean little. --write puts the results into
BENCHMARKS.md between its "results" markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pipelines import STEADY_EPOCHS  # noqa: E402  (stdlib-only at import)

LATER = f"epochs 2–{STEADY_EPOCHS}"
REPORT = HERE.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- results: written by `python benchmarks/run.py --write` -->", "<!-- end of results -->"
FLOPS_PER_SAMPLE = (
    3 * 2 * (784 * 256 + 256 * 128 + 128 * 10)
)  # forward + backward (2x forward) of the three Linear layers
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
CONSOLE_THREADS = max(1, (os.cpu_count() or 1) - 1)  # tui.runner.console_threads(0)

FULL = dict(
    train=60_000,
    test=10_000,
    reps=3,
    chapter_batches=300,
    contention_batches=200,
    target_acc=0.90,
    max_epochs=6,
    memory_epochs=500,
    memory_every=50,
    matmul_s=2.0,
    paints=3,
    keys=10,
    ab_epochs=16,
)
QUICK = dict(
    train=12_000,
    test=2_000,
    reps=1,
    chapter_batches=50,
    contention_batches=40,
    target_acc=0.80,
    max_epochs=10,
    memory_epochs=40,
    memory_every=10,
    matmul_s=0.5,
    paints=1,
    keys=4,
    ab_epochs=6,
)

# the alternating rounds: key -> (label, pipeline, options, environment)
ROUND = {
    "a": ("(a) chapter 6.1 loop, 5.1 pipeline", "chapter", ["--batches", "{chapter_batches}"], {}),
    "b": ("(b) same loop, TensorDataset DataLoader", "tensors", [], {}),
    "c": ("(c) trainconsole headless", "engine", ["--steady"], {}),
    "d": ("(d) trainconsole in the console", "console", ["--steady"], {}),
    "e": ("(e) Lightning Trainer", "lightning", [], {}),
    "d_all": (f"(d) with threads = {CORES} (all cores)", "console", ["--threads", str(CORES)], {}),
    "c_all": (f"(c) with threads = {CORES} (all cores)", "engine", ["--threads", str(CORES)], {}),
    # the console leaves a core to the interface (tui.runner.console_threads): its cost is measured against these
    "c_console": (
        f"(c) with threads = {CONSOLE_THREADS} (the console's)",
        "engine",
        ["--threads", str(CONSOLE_THREADS), "--steady"],
        {},
    ),
    "c_active": (
        f"(c) threads = {CORES}, OMP_WAIT_POLICY=ACTIVE",
        "engine",
        ["--threads", str(CORES)],
        {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "infinite"},
    ),
}
CPU_THREAD_VARIANTS = ("d_all", "c_all", "c_active", "c_console")


def cuda_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True
    )
    return probe.stdout.strip() == "True"


class Bench:
    def __init__(self, plan: dict, tmp: Path):
        self.plan, self.tmp = plan, tmp
        self.data, self.runs = tmp / "data", tmp / "runs"
        self.count = 0

    def env(self, extra: dict | None = None) -> dict:
        """The caller's environment without OpenMP settings: each pipeline sets what its real counterpart sets."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
        return {**env, **(extra or {})}

    def measure(self, name: str, options: list | tuple = (), extra_env: dict | None = None, label: str = "") -> dict:
        options = [str(o).format(**self.plan) for o in options]
        cmd = [
            sys.executable,
            str(HERE / "pipelines.py"),
            name,
            "--root",
            str(self.data),
            "--runs",
            str(self.runs),
            *options,
        ]
        self.count += 1
        print(f"[{self.count:2d}] {label or name} {' '.join(options)} ...", end=" ", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(extra_env), cwd=self.tmp)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            result = {"name": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        else:
            result = json.loads(lines[-1])
        print(_brief(result), file=sys.stderr, flush=True)
        return result

    def contended(self, name: str, options: list, extra_env: dict | None = None, label: str = "") -> tuple[dict, dict]:
        """The same measurement quiet, then with one busy-looping process beside it."""
        quiet = self.measure(name, options, extra_env, label + ", quiet")
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            loaded = self.measure(name, options, extra_env, label + ", beside a busy process")
        finally:
            hog.kill()
            hog.wait()
        return quiet, loaded

    def first_paint(self) -> dict:
        """Seconds from starting `trainconsole` in a tmux pane to the first non-blank screen.

        tmux is polled every ~10 ms.
        """
        if not shutil.which("tmux"):
            return {"unavailable": "tmux not installed"}
        exe = Path(sys.executable).with_name("trainconsole")
        cmd = shlex.join(
            ([str(exe)] if exe.exists() else [sys.executable, "-m", "engine"]) + ["-c", str(self.tmp / "absent.toml")]
        )
        tmux = ["tmux", "-L", f"trainconsole-bench-{os.getpid()}"]
        times, env = [], self.env({"TERM": "xterm-256color"})
        try:
            for i in range(self.plan["paints"]):
                start = time.perf_counter()
                subprocess.run(
                    tmux + ["new-session", "-d", "-s", f"p{i}", "-x", "120", "-y", "40", "-c", str(self.tmp), cmd],
                    check=True,
                    env=env,
                )
                while True:
                    pane = subprocess.run(tmux + ["capture-pane", "-p", "-t", f"p{i}"], capture_output=True, text=True)
                    if pane.returncode or time.perf_counter() - start > 30:
                        return {"error": "the console exited or showed nothing within 30 s"}
                    if pane.stdout.strip():
                        times.append(time.perf_counter() - start)
                        break
                    time.sleep(0.01)
                subprocess.run(tmux + ["kill-session", "-t", f"p{i}"], capture_output=True)
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)
        print(f"[--] first paint: {', '.join(f'{t:.2f} s' for t in times)}", file=sys.stderr)
        return {"seconds": times}

    def key_latency(self, dataset: str = "mnist") -> dict:
        """Seconds from a key sent to a tmux pane until the pane shows its screen, while the console trains.

        Keys 1 and 3 alternate (environment and training screens); the clock stops at the first
        capture showing the new screen's text (tmux polled every ~5 ms). On "mnist" (the
        benchmark's data) an epoch takes about a second; on "digits", the default dataset,
        epochs come ~20 a second and the screen redraws most often.
        """
        if not shutil.which("tmux"):
            return {"unavailable": "tmux not installed"}
        settings = self.tmp / f"keys-{dataset}.toml"
        data = (
            f'dataset = "mnist"\nroot = "{self.data}"\nval_fraction = 0.0\n'
            if dataset == "mnist"
            else f'dataset = "{dataset}"\n'
        )
        settings.write_text(
            f'[run]\nruns_dir = "{self.runs}"\nname = "keys"\n[data]\n{data}'
            f"[training]\nepochs = {100 if dataset == 'mnist' else 2000}\n",
            encoding="utf-8",
        )
        exe = Path(sys.executable).with_name("trainconsole")
        cmd = shlex.join(([str(exe)] if exe.exists() else [sys.executable, "-m", "engine"]) + ["-c", str(settings)])
        # a server of its own for each call: the last one, going away with its killed session, refuses new ones
        tmux = ["tmux", "-L", f"trainconsole-keys-{os.getpid()}-{dataset}"]

        def pane() -> str:
            return subprocess.run(tmux + ["capture-pane", "-p", "-t", "k"], capture_output=True, text=True).stdout

        def wait(shown, limit: float = 60.0) -> float | None:
            start = time.perf_counter()
            while time.perf_counter() - start < limit:
                if shown(pane()):
                    return time.perf_counter() - start
                time.sleep(0.005)
            return None

        training = lambda text: "batch" in text and "Train on:" not in text  # noqa: E731
        times: list[float] = []
        try:
            subprocess.run(
                tmux + ["new-session", "-d", "-s", "k", "-x", "120", "-y", "40", "-c", str(self.tmp), cmd],
                check=True,
                env=self.env({"TERM": "xterm-256color"}),
            )
            if wait(lambda text: "Environment" in text) is None:
                return {"error": "the console showed nothing within 60 s"}
            subprocess.run(tmux + ["send-keys", "-t", "k", "3"], check=True)
            time.sleep(0.5)
            subprocess.run(tmux + ["send-keys", "-t", "k", "s"], check=True)
            if wait(lambda text: "batch" in text and "epoch 1 batch 0" not in text, 120) is None:
                return {"error": "no training progress within 120 s of pressing s"}
            for i in range(self.plan["keys"]):
                key, shown = ("1", lambda text: "Train on:" in text) if i % 2 == 0 else ("3", training)
                start = time.perf_counter()
                subprocess.run(tmux + ["send-keys", "-t", "k", key], check=True)
                seconds = wait(shown, 10.0)
                if seconds is None:
                    return {"error": f"key {key} not answered within 10 s"}
                times.append(time.perf_counter() - start)
                time.sleep(0.3)
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)
        print(
            f"[--] key latency while training on {dataset}: {', '.join(f'{t * 1000:.0f} ms' for t in times)}",
            file=sys.stderr,
        )
        return {"seconds": times}


def _brief(r: dict) -> str:
    if "error" in r or "unavailable" in r:
        return r.get("error") or r["unavailable"]
    for key, text in (
        ("time_to_acc_s", "{:.1f} s to accuracy"),
        ("ratio", "on/off {:.3f}"),
        ("samples_per_s", "{:,.0f} samples/s"),
        ("flops", "{:.3g} FLOP/s"),
        ("rss_mb", "RSS MiB {}"),
    ):
        if key in r:
            second = f", later epochs {r['steady_samples_per_s']:,.0f}" if r.get("steady_samples_per_s") else ""
            return (
                (text.format(r[key]) if r[key] is not None else "not reached")
                + second
                + (f" ({r['threads']} threads)" if "threads" in r else "")
            )
    return "ok"


# -- the numbers ---------------------------------------------------------------------------


def rates(results: list[dict], key: str = "samples_per_s") -> list[float]:
    return [r[key] for r in results if r.get(key)]


def median(results: list[dict], key: str = "samples_per_s") -> float | None:
    values = rates(results, key)
    return statistics.median(values) if values else None


def spread(results: list[dict], key: str = "samples_per_s") -> str:
    values = rates(results, key)
    if not values:
        return next(
            (r.get("unavailable") or f"failed: {r['error']}" for r in results if "unavailable" in r or "error" in r),
            "n/a",
        )
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def threads(results: list[dict]) -> str:
    return "/".join(sorted({str(r["threads"]) for r in results if "threads" in r})) or "-"


def peak(results: list[dict]) -> str:
    values = [r["peak_rss_mb"] for r in results if "peak_rss_mb" in r and "error" not in r]
    return f"{max(values):,.0f}" if values else "-"


def ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x and y else None


def paired_ratio(xs: list[dict], ys: list[dict], key: str) -> tuple[float | None, list[float]]:
    """The median of round-by-round ratios x_i / y_i, and the ratios.

    Runs of the same round ran a minute apart: their ratio cancels most of a
    shared machine's slow drift, which the ratio of two medians does not.
    """
    pairs = [x[key] / y[key] for x, y in zip(xs, ys) if x.get(key) and y.get(key)]
    return (statistics.median(pairs) if pairs else None), pairs


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def verdict(value: float | None, ok) -> str:
    return "n/a" if value is None else ("PASS" if ok(value) else "MISS")


# -- the run -----------------------------------------------------------------------------------


def run(plan: dict, tmp: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from mnist_files import write_mnist

    write_mnist(tmp / "data", plan["train"], plan["test"])
    bench = Bench(plan, tmp)
    out: dict = {key: [] for key in ROUND}
    keys = [
        k for k in ROUND if not (plan["cuda"] and k in CPU_THREAD_VARIANTS)
    ]  # on a GPU the CPU threads barely matter
    matmuls: dict[int, list[dict]] = {}

    def matmul(threads: int) -> None:
        matmuls.setdefault(threads, []).append(
            bench.measure("matmul", ["--threads", threads, "--seconds", plan["matmul_s"]], label="matmul bound")
        )

    for _ in range(plan["reps"]):
        for key in keys:
            label, name, options, env = ROUND[key]
            out[key].append(bench.measure(name, options, env, label))
        for threads in sorted({1, CORES}):  # once a round: a busy minute on a shared machine must not halve the bound
            matmul(threads)
    out["a_workers"] = [
        bench.measure("chapter", ["--batches", "{chapter_batches}", "--workers", 2], label="(a) with num_workers=2")
    ]
    out["c_1024"] = [
        bench.measure("engine", ["--batch", 1024, "--steady"], label="(c) batch 1024") for _ in range(plan["reps"])
    ]
    used = {r["threads"] for r in out["c"] + out["c_1024"] if "threads" in r} | {CORES}
    for threads in sorted(used - matmuls.keys()):
        matmul(threads)
    out["matmul"] = {
        t: max(matmuls[t], key=lambda r: r.get("flops") or 0.0) for t in sorted(used)
    }  # the bound: the best of the rounds
    accuracy = ["--target-acc", plan["target_acc"], "--max-epochs", plan["max_epochs"]]
    out["tta"] = {
        "(a) chapter, batch 64": bench.measure("chapter", accuracy, label="(a) time to accuracy"),
        "(c) trainconsole, batch 64": bench.measure("engine", accuracy, label="(c) time to accuracy"),
        "(c) trainconsole, batch 1024": bench.measure(
            "engine", accuracy + ["--batch", 1024], label="(c) batch 1024 time to accuracy"
        ),
    }
    n = ["--batches", plan["contention_batches"]]
    out["contention"] = {
        f"plain loop (b), {CORES} threads, OMP default": bench.contended(
            "tensors", n + ["--threads", CORES], label="plain loop"
        ),
        "(c) trainconsole headless": bench.contended("engine", n, label="(c)"),
        f"(c) with threads = {CORES}": bench.contended(
            "engine", n + ["--threads", CORES], label=f"(c) {CORES} threads"
        ),
    }
    out["console_ab"] = bench.measure(
        "console-ab", ["--epochs", plan["ab_epochs"]], label="console on/off, one process"
    )
    out["memory"] = bench.measure(
        "digits-memory", ["--epochs", plan["memory_epochs"], "--every", plan["memory_every"]], label="digits memory"
    )
    out["memory_console"] = bench.measure(
        "digits-memory",
        ["--epochs", plan["memory_epochs"], "--every", plan["memory_every"], "--console"],
        label="digits memory, in the console",
    )
    out["paint"] = bench.first_paint()
    out["keys"] = bench.key_latency()
    out["keys_digits"] = bench.key_latency("digits")
    return out


def report(out: dict, plan: dict, facts: dict) -> tuple[str, bool]:
    """The results as Markdown, and whether every measurement ran."""
    a, b, c, d, e = (median(out[k]) for k in "abcde")
    lines = [
        f"Machine: {facts['cpu']}, {CORES} cores, torch {facts['torch']} on {facts['device']}, "
        f"Python {platform.python_version()}, {facts['date']}; 1-minute load at start {facts['load']:.2f}"
        f"{' (busy: numbers are noisy)' if facts['load'] > 0.5 else ''}.",
        f"Data: {plan['train']:,} generated MNIST-shaped training samples, {plan['test']:,} validation; "
        f"the chapter's MLP 784-256-128-10, dropout 0.3, Adam 1e-3; {plan['reps']} alternating rounds"
        f"{' (QUICK smoke run: numbers mean little)' if plan['train'] == QUICK['train'] else ''}.",
        "",
        "| Pipeline (batch 64) | samples/s median (min–max) | × (a) | threads | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    rows = (
        [(k, ROUND[k][0]) for k in "abcde"]
        + [("a_workers", "(a) with num_workers=2 (once)")]
        + [(k, ROUND[k][0]) for k in ("c_all", "c_active", "c_console", "d_all")]
    )
    for key, label in rows:
        lines.append(
            f"| {label} | {spread(out[key])} | {fmt(ratio(median(out[key]), a), '.1f', '×')} | "
            f"{threads(out[key])} | {peak(out[key])} |"
        )

    matmul = {t: r.get("flops") for t, r in out["matmul"].items()}
    # the bound is a machine's steady pace: each run's epochs after the first,
    # which warms up threads, caches and allocator
    steady = "steady_samples_per_s"
    c64, c1024 = median(out["c"], steady), median(out["c_1024"], steady)

    def bound(results: list[dict]) -> tuple[float | None, str]:
        t = next((r["threads"] for r in results if "threads" in r), CORES)
        return matmul.get(t), f"{t} thread{'s' * (t != 1)}"

    lines += [
        "",
        "Hardware bound: model training FLOPs per sample = 3 × 2 × (784·256 + 256·128 + 128·10) = "
        f"{FLOPS_PER_SAMPLE / 1e6:.2f} MFLOP.",
        "",
        f"| | matmul 2048² fp32 | ceiling samples/s | (c) samples/s, {LATER} | % of bound |",
        "|---|---|---|---|---|",
    ]
    for label, results, rate in (("(c) batch 64", out["c"], c64), ("(c) batch 1024", out["c_1024"], c1024)):
        flops, used = bound(results)
        ceiling = flops / FLOPS_PER_SAMPLE if flops else None
        lines.append(
            f"| {label}, {used} | {fmt(flops and flops / 1e9, '.0f', ' GFLOP/s')} | {fmt(ceiling, ',.0f')} | "
            f"{spread(results, steady)} | {fmt(ratio(rate, ceiling) and 100 * ratio(rate, ceiling), '.0f', ' %')} |"
        )
    if CORES in matmul and matmul[CORES]:
        lines.append(
            f"| all {CORES} cores | {matmul[CORES] / 1e9:.0f} GFLOP/s | {matmul[CORES] / FLOPS_PER_SAMPLE:,.0f} | | |"
        )

    lines += [
        "",
        f"Time to {plan['target_acc']:.0%} validation accuracy "
        "(from process set-up, data loading included; checked once per epoch):",
        "",
        "| Run | seconds | epochs | val acc |",
        "|---|---|---|---|",
    ]
    for label, r in out["tta"].items():
        lines.append(
            f"| {label} | {fmt(r.get('time_to_acc_s'), '.1f')} | {r.get('epochs_to_acc') or 'not reached'} | "
            f"{fmt(r.get('val_acc'), '.3f')} |"
            if "error" not in r
            else f"| {label} | failed: {r['error']} | | |"
        )

    lines += [
        "",
        f'Contention ({plan["contention_batches"]} batches of 64, one `python -c "while True: pass"` beside the run):',
        "",
        "| Run | quiet samples/s | beside a busy process | kept | threads |",
        "|---|---|---|---|---|",
    ]
    kept = {}
    for label, (quiet, loaded) in out["contention"].items():
        kept[label] = ratio(median([loaded]), median([quiet]))
        lines.append(
            f"| {label} | {spread([quiet])} | {spread([loaded])} | "
            f"{fmt(kept[label] and 100 * kept[label], '.0f', ' %')} | {threads([quiet, loaded])} |"
        )

    growths = []
    for key, where in (("memory", "headless"), ("memory_console", "in the console, which draws every epoch")):
        rss = {int(k): v for k, v in out[key].get("rss_mb", {}).items()}
        growths.append(rss[max(rss)] - rss[min(rss)] if len(rss) > 1 else None)
        lines += [
            "",
            f"Memory over a {plan['memory_epochs']}-epoch digits run (default settings, batch 64), {where}, "
            f"RSS MiB every {plan['memory_every']} epochs: "
            + (", ".join(f"{k}: {v:,.1f}" for k, v in sorted(rss.items())) if rss else out[key].get("error", "n/a")),
        ]
    growth = None if None in growths else max(growths)
    paint = out["paint"].get("seconds")
    paint_median = statistics.median(paint) if paint else None
    lines.append(
        "First paint (`trainconsole` started in a 120×40 tmux pane until the pane first shows anything): "
        + (
            ", ".join(f"{t:.2f} s" for t in paint)
            if paint
            else out["paint"].get("error") or out["paint"].get("unavailable")
        )
    )

    every_key = []
    for key, what in (("keys", "MNIST, ~1 s epochs"), ("keys_digits", "digits, the default, ~20 epochs a second")):
        keys = out[key].get("seconds")
        every_key += keys or []
        lines.append(
            f"Key presses while the console trains on {what} "
            "(1 and 3 alternately, from `tmux send-keys` until the pane shows the screen): "
            + (
                ", ".join(f"{t * 1000:.0f} ms" for t in keys)
                if keys
                else out[key].get("error") or out[key].get("unavailable")
            )
        )
    keys_max = max(every_key) if every_key else None

    # like with like: the console trains on one core fewer than headless may (on a GPU the threads barely matter)
    headless = out["c_console"] or out["c"]
    console_ratio, console_pairs = paired_ratio(out["d"], headless, "steady_samples_per_s")
    lines += [""]
    lines.append(
        f"Console against headless on the console's threads ({CONSOLE_THREADS}), {LATER} of each run "
        "(the median of their rates; the console draws each epoch while the next one trains), round by round: "
        f"{', '.join(f'{r:.2f}×' for r in console_pairs) or 'n/a'}; their median is the target's figure "
        f"(first epochs, ratio of medians: {fmt(ratio(d, median(headless)), '.2f', '×')})."
    )
    ab = out["console_ab"]
    lines.append(
        "The same cost measured in one process, so that no drift of the machine falls between the halves: "
        "the engine trains in a thread beside the console, whose training screen gets the events of alternate "
        "epochs only (each such epoch carries "
        "its progress ticks and the drawing of the epoch before it); the on/off ratios of adjacent epochs are "
        + (
            f"{', '.join(f'{p:.2f}' for p in ab['pairs'])}, median {ab['ratio']:.2f}×."
            if ab.get("ratio")
            else (ab.get("error") or "n/a") + "."
        )
    )
    contention_engine = kept.get("(c) trainconsole headless")
    contention_plain = next(iter(kept.values()))
    targets = [
        ("trainconsole ≥ 4× (a) at batch 64", ratio(c, a), lambda v: v >= 4, ".1f", "×"),
        ("trainconsole ≥ 1.4× (b)", ratio(c, b), lambda v: v >= 1.4, ".2f", "×"),
        ("trainconsole ≥ 2.5× (e)", ratio(c, e), lambda v: v >= 2.5, ".2f", "×"),
        ("≥ 50 % of the hardware bound at batch 64", _pct(c64, bound(out["c"])[0]), lambda v: v >= 50, ".0f", " %"),
        (
            "≥ 75 % of the hardware bound at batch 1024",
            _pct(c1024, bound(out["c_1024"])[0]),
            lambda v: v >= 75,
            ".0f",
            " %",
        ),
        (
            "keeps ≥ 50 % beside a busy process "
            f"(plain loop: {fmt(contention_plain and 100 * contention_plain, '.0f', ' %')})",
            contention_engine and 100 * contention_engine,
            lambda v: v >= 50,
            ".0f",
            " %",
        ),
        (
            f"console ≥ 0.95× headless on its threads ({LATER}, median of round ratios)",
            console_ratio,
            lambda v: v >= 0.95,
            ".2f",
            "×",
        ),
        ("first paint ≤ 1 s", paint_median, lambda v: v <= 1.0, ".2f", " s"),
        (
            "key press answered ≤ 100 ms while training (slowest)",
            keys_max and 1000 * keys_max,
            lambda v: v <= 100,
            ".0f",
            " ms",
        ),
        (
            f"memory flat over {plan['memory_epochs']} epochs (growth ≤ 10 MiB; the larger of headless and console)",
            growth,
            lambda v: v <= 10,
            "+.1f",
            " MiB",
        ),
    ]
    lines += ["", "| Target | measured | |", "|---|---|---|"]
    lines += [
        f"| {label} | {fmt(value, spec, unit)} | {verdict(value, ok)} |" for label, value, ok, spec, unit in targets
    ]
    every = (
        [r for k in ROUND for r in out[k]]
        + out["a_workers"]
        + out["c_1024"]
        + list(out["matmul"].values())
        + list(out["tta"].values())
    )
    every += [r for pair in out["contention"].values() for r in pair] + [
        out["console_ab"],
        out["memory"],
        out["memory_console"],
        out["paint"],
        out["keys"],
        out["keys_digits"],
    ]
    return "\n".join(lines), not any("error" in r for r in every)


def _pct(rate: float | None, flops: float | None) -> float | None:
    return 100 * rate * FLOPS_PER_SAMPLE / flops if rate and flops else None


def machine_facts(out: dict) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    any_matmul = next(iter(out["matmul"].values()), {})
    return {
        "cpu": cpu,
        "torch": any_matmul.get("torch", "?"),
        "device": any_matmul.get("device", "?"),
        "date": datetime.date.today().isoformat(),
    }


def write_report(text: str) -> None:
    body = REPORT.read_text(encoding="utf-8") if REPORT.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in body or END not in body:
        body = body.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = body.partition(BEGIN)
    _, _, tail = rest.partition(END)
    REPORT.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny measurements: a smoke run (also BENCH_QUICK=1)")
    p.add_argument("--write", action="store_true", help=f"write the results into {REPORT.name}")
    p.add_argument("--reps", type=int, default=None, help="alternating rounds (default: 3, or 1 with --quick)")
    args = p.parse_args(argv)
    plan = QUICK if args.quick or os.environ.get("BENCH_QUICK") == "1" else FULL
    if args.reps:
        plan = {**plan, "reps": args.reps}
    plan = {**plan, "cuda": cuda_available()}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainconsole-bench-") as tmp:
        out = run(plan, Path(tmp))
    facts = {**machine_facts(out), "load": load}
    text, complete = report(out, plan, facts)
    print(f"\n{text}\n\n(benchmark took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_report(text)
        print(f"written to {REPORT}")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
