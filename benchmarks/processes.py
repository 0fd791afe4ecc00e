"""Two processes against one: `trainconsole run --processes 2` and `--processes 1` on the same data.

    python benchmarks/processes.py [--epochs 3] [--rounds 3] [--quick] [--write]

The chapter's MLP at batch 64 (per process) on the benchmark's MNIST-shaped files, in alternating
rounds (1, 2, 1, 2, ...), each a real CLI run in its own process(es). A run's rate is the median of its
epochs' samples/s after the first (all ranks together); the figure is the median over the rounds of
the 2-process rate over the 1-process rate of the same round (the gradients go through gloo). Both reach
the same validation accuracy after the same epochs (the table shows it). --write puts the result into
BENCHMARKS.md between its "processes" markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE.parent / "BENCHMARKS.md"
BEGIN = "<!-- processes: written by `python benchmarks/processes.py --write` -->"
END = "<!-- end of processes -->"
TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
SETTINGS = """\
[run]
runs_dir = "runs"
seed = 0
[data]
dataset = "mnist"
root = "{root}"
batch_size = 64
val_fraction = 0.0
[training]
epochs = {epochs}
[device]
device = "cpu"
"""


def start_run(work: Path, processes: int, name: str, batch: int = 64, threads: int = 0) -> subprocess.Popen:
    sets = [f"run.name={name}", f"data.batch_size={batch}", f"device.threads={threads}"]
    command = [str(TRAINCONSOLE), "run", "--processes", str(processes)]
    for text in sets:
        command += ["--set", text]
    return subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def result(work: Path, process: subprocess.Popen, name: str) -> dict:
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{err[-2000:]}")
    rows = [json.loads(line) for line in (work / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in rows[1:]] or [rows[0]["samples_per_s"]]
    return {"rate": statistics.median(rates), "val_acc": rows[-1]["val_acc"], "epochs": len(rows)}


def one_run(work: Path, processes: int, name: str, batch: int = 64, threads: int = 0) -> dict:
    return result(work, start_run(work, processes, name, batch, threads), name)


def independent_pair(work: Path, name: str) -> float:
    """The ceiling: two 1-process runs on one thread each at once, that never talk to each other; summed."""
    names = [f"{name}-a", f"{name}-b"]
    started = [start_run(work, 1, n, threads=1) for n in names]
    return sum(result(work, p, n)["rate"] for p, n in zip(started, names))


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="12,000 samples, 2 epochs, 1 round: a smoke run")
    p.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick or os.environ.get("BENCH_QUICK"):
        args.epochs, args.rounds, train, test = 2, 1, 12_000, 2_000
    else:
        train, test = 60_000, 10_000
    sys.path.insert(0, str(HERE))
    from mnist_files import write_mnist

    with tempfile.TemporaryDirectory(prefix="tc-processes-") as tmp:
        work = Path(tmp)
        write_mnist(work / "data", train=train, test=test)
        (work / "settings.toml").write_text(SETTINGS.format(root=work / "data", epochs=args.epochs))
        start_load = load()
        # (processes, batch per process, threads): the chapter's batch on 1 process (its threads timed, and on one
        # thread as each of 2 processes runs) and on 2, and 1 process at the 2's global batch
        runs: dict[tuple[int, int, int], list[dict]] = {(1, 64, 0): [], (1, 64, 1): [], (2, 64, 0): [], (1, 128, 0): []}
        pairs: list[float] = []
        for r in range(args.rounds):
            for key in runs:
                n, batch, threads = key
                runs[key].append(one_run(work, n, f"p{n}-b{batch}-t{threads}-{r}", batch, threads))
                print(f"round {r + 1}, {key}: {runs[key][-1]}", file=sys.stderr)
            pairs.append(independent_pair(work, f"pair-{r}"))
            print(f"round {r + 1}, two independent runs: {pairs[-1]:,.0f}", file=sys.stderr)
    ceilings = [pair / one["rate"] for pair, one in zip(pairs, runs[1, 64, 1])]
    # each of the 2 processes trains on one thread: against one process on one thread, and on the threads it times;
    # and one process at the 2's global batch, which takes the same steps
    ratios = [two["rate"] / one["rate"] for one, two in zip(runs[1, 64, 1], runs[2, 64, 0])]
    ratio = statistics.median(ratios)
    ratios_timed = [two["rate"] / one["rate"] for one, two in zip(runs[1, 64, 0], runs[2, 64, 0])]
    ratios_batch = [two["rate"] / one["rate"] for one, two in zip(runs[1, 128, 0], runs[2, 64, 0])]

    def rates(key: tuple[int, int, int]) -> str:
        return ", ".join(f"{r['rate']:,.0f}" for r in runs[key])

    def accs(key: tuple[int, int, int]) -> str:
        return ", ".join(f"{100 * r['val_acc']:.1f} %" for r in runs[key])

    text = "\n".join(
        [
            f"{datetime.date.today()}, {os.cpu_count()} cores, 1-minute load at start {start_load:.2f}; "
            f"{train:,} MNIST-shaped training samples, the chapter's MLP at batch 64 per process, {args.epochs} epochs "
            f"a run, {args.rounds} alternating rounds; samples/s of epochs 2–{args.epochs} (all processes together).",
            "",
            "| Processes × batch | samples/s, round by round | validation accuracy after the last epoch |",
            "|---|---|---|",
            f"| 1 × 64 (threads timed: ThreadTrial) | {rates((1, 64, 0))} | {accs((1, 64, 0))} |",
            f"| 1 × 64, threads = 1 | {rates((1, 64, 1))} | {accs((1, 64, 1))} |",
            f"| 2 × 64 (one thread each) | {rates((2, 64, 0))} | {accs((2, 64, 0))} |",
            f"| 1 × 128 (the same steps as 2 × 64) | {rates((1, 128, 0))} | {accs((1, 128, 0))} |",
            "",
            f"2 processes (gloo) against 1 process on one thread, round by round: "
            f"{', '.join(f'{x:.2f}×' for x in ratios)}; median **{ratio:.2f}×**. Against one process on the "
            f"threads it timed: {', '.join(f'{x:.2f}×' for x in ratios_timed)}; against one process at batch 128: "
            f"{', '.join(f'{x:.2f}×' for x in ratios_batch)}.",
            "",
            "The ceiling, in the same rounds: two 1-process runs on one thread each, trained at once and never "
            "talking to each other (their samples/s summed: "
            f"{', '.join(f'{x:,.0f}' for x in pairs)}), against the one-thread run alone: "
            f"{', '.join(f'{x:.2f}×' for x in ceilings)} (median {statistics.median(ceilings):.2f}×).",
        ]
    )
    print(text)
    if args.write:
        report = REPORT.read_text()
        if BEGIN not in report:
            raise SystemExit(f"{REPORT}: no {BEGIN!r} marker")
        head, rest = report.split(BEGIN, 1)
        REPORT.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
