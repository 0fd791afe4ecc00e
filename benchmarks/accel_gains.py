"""Each speed-up of engine/training/accel measured alone: all on, all off, and each one off while the others stay on.

    python benchmarks/accel_gains.py [--rounds 6] [--digits-epochs 6] [--mnist-epochs 4] [--mnist-train 3000] [--write]

One process trains the default MLP (hidden [256, 128], dropout 0.3, Adam, batch 64, seed 0) through the Trainer,
headless as `trainconsole run` sets it up (it sets the threads), on digits and on generated MNIST-shaped data
(benchmarks/mnist_files.py). A speed-up is turned off by swapping the accel function the trainer calls:
`speed_up_model` (fast dropout), `fused_step_applies` (fused MLP step), `private_kernel` (the direct fused Adam
call: the fused step then calls optimizer.step()), `plan_threads` (the thread trial and the core follower: the
run keeps torch's default thread count, as with accel off). The variants run in rounds, in order then in reverse
order; a run's rate is the median samples/s of its epochs 2..E (the first warms up and times the threads); the
ratio to "all on" is the median of the rounds' ratios. --write puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
import engine.training.accel as accel  # noqa: E402
import engine.training.accel.fused_adam as fused_adam  # noqa: E402
from engine.events import EpochCompleted, RunStarted  # noqa: E402
from engine.settings.config import load_settings  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402
from mnist_files import write_mnist  # noqa: E402
from report_section import REPORT, write_section  # noqa: E402

SECTION = "## Speed-ups, one by one (engine/training/accel)"
DEFAULT_THREADS = torch.get_num_threads()
real_plan_threads = accel.plan_threads


def default_threads(model, in_shape, device, settings, **kwargs):
    """accel's thread plan as with accel off: torch's default count for the whole run, no trial, no follower."""
    return real_plan_threads(model, in_shape, device, settings.replace("training.accel", "off"), **kwargs)


# name: (training.accel, the accel functions swapped for the run)
VARIANTS = {
    "all on (accel = auto)": ("auto", {}),
    "fast dropout off (the fused step draws its own)": (
        "auto",
        {(accel, "speed_up_model"): lambda model, settings: None},
    ),
    "fused MLP step off (autograd, fast dropout)": ("auto", {(accel, "fused_step_applies"): lambda *a, **k: False}),
    "fused step and fast dropout off (autograd, nn.Dropout)": (
        "auto",
        {(accel, "fused_step_applies"): lambda *a, **k: False, (accel, "speed_up_model"): lambda m, s: None},
    ),
    "direct fused Adam off (optimizer.step())": ("auto", {(fused_adam, "private_kernel"): lambda name: None}),
    "thread trial off (torch's default threads)": ("auto", {(accel, "plan_threads"): default_threads}),
    "all off (accel = off)": ("off", {}),
}


def measure(variant: str, data: list[str], epochs: int) -> tuple[float, RunStarted, int]:
    """One run: the median samples/s of epochs 2..E, its RunStarted, the threads it ended on."""
    value, swaps = VARIANTS[variant]
    settings = load_settings(
        None, ("run.seed=0", "device.device='cpu'", f"training.epochs={epochs}", f"training.accel={value!r}", *data)
    )
    events: list = []
    torch.set_num_threads(DEFAULT_THREADS)  # each run starts where a fresh process starts
    with ExitStack() as stack:
        for (module, name), replacement in swaps.items():
            stack.enter_context(mock.patch.object(module, name, replacement))
        final = Trainer(settings, events.append, set_threads=True).run()
    if final.status != "completed":
        raise RuntimeError(f"{variant}: the run ended {final.status}: {getattr(final, 'reason', final)}")
    started = next(e for e in events if isinstance(e, RunStarted))
    rates = [e.samples_per_s for e in events if isinstance(e, EpochCompleted) and e.epoch > 1]
    return statistics.median(rates), started, torch.get_num_threads()


def rounds(data: list[str], epochs: int, count: int) -> dict[str, dict]:
    """Per variant: its runs' rates, their ratios to "all on" in the same round, its start and its threads."""
    names = list(VARIANTS)
    found = {v: {"rates": [], "ratios": [], "threads": set()} for v in names}
    for r in range(count):
        rates = {}
        for variant in names if r % 2 == 0 else names[::-1]:
            rates[variant], found[variant]["started"], threads = measure(variant, data, epochs)
            found[variant]["threads"].add(threads)
        for variant in names:
            found[variant]["rates"].append(rates[variant])
            found[variant]["ratios"].append(rates[variant] / rates[names[0]])
        print(f"round {r + 1}: " + ", ".join(f"{rates[v]:,.0f}" for v in names), flush=True)
    return found


def table(title: str, found: dict[str, dict]) -> list[str]:
    first = next(iter(found.values()))["started"]
    lines = [
        f"{title}: {first.train_samples:,} training samples, {first.parameters:,} parameters.",
        "",
        "| Variant | step | samples/s median (min–max) | × all on, median (min–max) | threads |",
        "|---|---|---|---|---|",
    ]
    for variant, f in found.items():
        rates, ratios = f["rates"], f["ratios"]
        threads = "/".join(str(t) for t in sorted(f["threads"]))
        step = f["started"].step.split(" (")[0]
        spread = f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"
        ratio = f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
        lines.append(f"| {variant} | {step} | {spread} | {ratio} | {threads} |")
    return lines + [""]


def header(args, loads: tuple[float, float]) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return [
        SECTION,
        "",
        "<!-- written by `python benchmarks/accel_gains.py --write` -->",
        f"Machine: {cpu or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on cpu, "
        f"{datetime.date.today()}; 1-minute load {loads[0]:.2f} at start, {loads[1]:.2f} at the end. A shared VM: "
        "other processes take its cores at times, and a rate moves from run to run by far more than the gains "
        "measured here; compare within a round (× all on), and look at the control row's spread.",
        f"Each run: the default MLP, batch 64, seed 0, in one process through the Trainer, which sets the threads as "
        f"`trainconsole run` does (torch's default here: {DEFAULT_THREADS}); its rate is the median samples/s of "
        f"epochs 2–E. {args.rounds} rounds, the variants in order then in reverse. × all on: a run's rate over all "
        "on's in the same round, median (min–max) over the rounds; 0.80×: without that speed-up, 80 % of the speed.",
        "Fast dropout off leaves the fused MLP step on, which draws its masks the same cheap way itself: for the MLP "
        "that row does the same work as all on, a control that shows the noise. The dropout module counts where the "
        "fused step does not apply (a CNN, compile, bf16), as the two autograd rows show. A speed-up pays where its "
        "row stays clearly below that control in both tables, run after run.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6, help="rounds of every variant (even: each order as often)")
    p.add_argument("--digits-epochs", type=int, default=6)
    p.add_argument("--mnist-epochs", type=int, default=4)
    p.add_argument("--mnist-train", type=int, default=3_000, help="generated MNIST-shaped training samples")
    p.add_argument("--write", action="store_true", help=f"write the tables into {REPORT.name}")
    args = p.parse_args(argv)
    if min(args.digits_epochs, args.mnist_epochs) < 2:
        p.error("epochs must be at least 2: the first warms up and is not counted")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trainconsole-accel-") as tmp:
        write_mnist(Path(tmp), train=args.mnist_train, test=1_000)
        mnist = ["data.dataset='mnist'", f"data.root={tmp!r}", "data.val_fraction=0.0"]
        print("digits")
        digits_found = rounds([], args.digits_epochs, args.rounds)
        print("mnist-shaped")
        mnist_found = rounds(mnist, args.mnist_epochs, args.rounds)
    lines = [
        *header(args, (load, os.getloadavg()[0])),
        *table(f"Digits, MLP 64-256-128-10, {args.digits_epochs} epochs", digits_found),
        *table(f"Generated MNIST-shaped data, MLP 784-256-128-10, {args.mnist_epochs} epochs", mnist_found),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
