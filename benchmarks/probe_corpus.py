"""The gradient probes (engine/training/probes.py) on runs built to show each problem, and on healthy runs.

    .venv/bin/python benchmarks/probe_corpus.py [--seeds 20] [--healthy-seeds 5] [--cost] [--only NAME]

Each run is a tiny plain training loop of its own (not the trainer): per epoch, the gradient probe on the
batches `probed_batches` picks, the activation probe on a full batch of the epoch, then `diagnose_gradients`.

- healthy: the built-in MLP and CNN on scikit-learn's digits, wine and breast cancer (standardised), Adam 1e-3,
  brisk SGD (0.5; 0.1 with momentum), a 4-layer ReLU MLP, 2-layer tanh and sigmoid MLPs; 10 epochs: the share of
  epochs with any probe badge (target <= 2 %);
- built to show a problem (3 epochs): vanishing, 8 to 10 sigmoid layers, SGD; exploding, a ReLU MLP with weights
  x10 to x50, SGD, no normalisation; dying ReLU, a ReLU MLP at a high rate (SGD with momentum 0.9 at 0.3-0.75,
  plain SGD at 1-3); saturated units, tanh and sigmoid MLPs on unstandardised wine and breast-cancer features: the share
  of runs whose badge shows within 3 epochs (target >= 95 %).

'Stuck units on the whole training set': runs in which a forward pass of every training sample (not the probe's
one batch) finds a layer over the dead or saturated share within 3 epochs, i.e. the problem is there. The last
column is the run nearest to the line: for healthy runs the most alarming value of each number over all
epochs, for the others the least alarming of the runs' most alarming values within 3 epochs.

--cost times the probes of one epoch against the epoch's training, on digits and on an MNIST-shaped
60,000 x 784 tensor dataset (the chapter's MLP, batch 64, Adam), with the autograd step and with the fused MLP
step the console uses on a CPU; the median of --rounds epochs (target <= 2 %).
The tables go in BENCHMARKS.md ('Gradient probes').
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models.networks import CNN, MLP  # noqa: E402
from engine.training.probes import (  # noqa: E402
    GradientProbe,
    ProbeRules,
    diagnose_gradients,
    first_to_last,
    grad_to_weight,
    probe_activations,
    probed_batches,
    worst_layer,
)

BATCH = 64


@dataclass(frozen=True)
class Case:
    name: str
    expect: str | None  # the badge the case is built to show; None: healthy
    dataset: str
    build: Callable[[int, tuple[int, ...], int], nn.Module]  # (seed, in_shape, classes) -> model
    optimizer: Callable[[nn.Module, int], torch.optim.Optimizer]  # (model, seed)
    epochs: int


@dataclass(frozen=True)
class Epoch:
    """One epoch's badge and the probes' numbers behind it."""

    badge: str  # "ok" for none
    grad_to_weight: float  # nan where undefined
    first_to_last: float
    dead: float  # the largest share of dead units of a ReLU layer
    pinned: float  # of saturated units of a sigmoid or tanh layer
    stuck_in_all: float  # the larger of both shares on the whole training set: is the problem there?


def load(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """digits, wine, cancer standardised; with "-raw" as they come; "digits-image": 1 x 8 x 8 images."""
    from sklearn import datasets

    base = name.split("-")[0]
    bunch = {"digits": datasets.load_digits, "wine": datasets.load_wine, "cancer": datasets.load_breast_cancer}[base]()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    if not name.endswith("-raw"):
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    return (x.reshape(-1, 1, 8, 8) if name.endswith("-image") else x), torch.tensor(bunch.target)


def sequential(widths: list[int], activation: Callable[[], nn.Module], scale: float = 1.0) -> nn.Sequential:
    """Linear layers of these widths with the activation between them, every weight and bias times `scale`."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(activation())
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


def adam(model: nn.Module, seed: int) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def sgd(lr: float | tuple[float, ...], momentum: float = 0.0):
    """SGD at `lr`, or at lr[seed % len(lr)]."""
    return lambda model, seed: torch.optim.SGD(
        model.parameters(), lr=lr[seed % len(lr)] if isinstance(lr, tuple) else lr, momentum=momentum
    )


def mlp(hidden: int, depth: int, activation: Callable[[], nn.Module], scales: tuple[float, ...] = (1.0,)):
    """A builder of `depth` hidden layers of `hidden` units; the weight scale is scales[seed % len(scales)]."""
    return lambda seed, shape, k: sequential(
        [shape[0]] + [hidden] * depth + [k], activation, scales[seed % len(scales)]
    )


def cases() -> list[Case]:
    builtin = lambda seed, shape, k: MLP(shape[0], k, (256, 128), 0.3)  # noqa: E731
    healthy = [Case(f"built-in MLP, Adam, {d}", None, d, builtin, adam, 10) for d in ("digits", "wine", "cancer")]
    healthy += [
        Case("built-in MLP, SGD 0.01 momentum 0.9, digits", None, "digits", builtin, sgd(0.01, 0.9), 10),
        Case("built-in MLP, SGD 0.5, digits", None, "digits", builtin, sgd(0.5), 10),
        Case("built-in CNN, Adam, digits 8x8", None, "digits-image", lambda s, shape, k: CNN(shape, k), adam, 10),
        Case("built-in CNN, SGD 0.1 momentum 0.9, digits 8x8", None, "digits-image", lambda s, shape, k: CNN(shape, k),
             sgd(0.1, 0.9), 10),
        Case("4 ReLU layers, Adam, digits", None, "digits", mlp(128, 4, nn.ReLU), adam, 10),
        Case("2 tanh layers, Adam, digits", None, "digits", mlp(64, 2, nn.Tanh), adam, 10),
        Case("2 tanh layers, Adam, cancer", None, "cancer", mlp(64, 2, nn.Tanh), adam, 10),
        Case("2 sigmoid layers, Adam, digits", None, "digits", mlp(64, 2, nn.Sigmoid), adam, 10),
    ]
    deep_sigmoid = lambda seed, shape, k: sequential([shape[0]] + [64] * (8 + seed % 3) + [k], nn.Sigmoid)  # noqa
    broken = [
        Case("8-10 sigmoid layers, SGD 0.1", "vanishing_gradients", "digits", deep_sigmoid, sgd(0.1), 3),
        Case("3 ReLU layers, weights x10/x20/x50, SGD 0.01", "exploding_gradients", "digits",
             mlp(128, 3, nn.ReLU, (10, 20, 50)), sgd(0.01), 3),
        Case("2 ReLU layers, SGD 0.3/0.5/0.75 momentum 0.9", "dying_relu", "digits", mlp(128, 2, nn.ReLU),
             sgd((0.3, 0.5, 0.75), 0.9), 3),
        Case("4 ReLU layers, SGD 1/2/3", "dying_relu", "digits", mlp(128, 4, nn.ReLU), sgd((1.0, 2.0, 3.0)), 3),
        Case("2 tanh layers, raw wine, SGD 0.01", "saturated_units", "wine-raw", mlp(64, 2, nn.Tanh), sgd(0.01), 3),
        Case("2 sigmoid layers, raw cancer, SGD 0.01", "saturated_units", "cancer-raw", mlp(64, 2, nn.Sigmoid),
             sgd(0.01), 3),
    ]
    return healthy + broken


def run_case(case: Case, seed: int, data: dict) -> list[Epoch]:
    """Every epoch of one seeded run: its badge and its numbers."""
    x, y = data[case.dataset]
    torch.manual_seed(seed)
    model = case.build(seed, tuple(x.shape[1:]), int(y.max()) + 1)
    optimizer = case.optimizer(model, seed)
    probe, loss_fn = GradientProbe(model), nn.CrossEntropyLoss()
    batches = (len(x) + BATCH - 1) // BATCH
    probed, epochs = probed_batches(batches), []
    for epoch in range(1, case.epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        for i in range(batches):
            index = order[i * BATCH:(i + 1) * BATCH]
            xb, yb = x[index], y[index]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            optimizer.step()
            if i + 1 in probed:
                probe.record()
        records, layers = probe.take(), probe_activations(model, x[order[:BATCH]])  # a full batch, not the last
        diagnostic = diagnose_gradients(epoch, records, layers)
        _, _, *truth = _numbers([], probe_activations(model, x))
        epochs.append(Epoch(diagnostic.status if diagnostic else "ok", *_numbers(records, layers),
                            max(truth, key=lambda v: -1 if math.isnan(v) else v)))
    return epochs


def _numbers(records, layers) -> tuple[float, float, float, float]:
    rules, nan = ProbeRules(), float("nan")
    dead, pinned = worst_layer(layers, ("relu",), rules), worst_layer(layers, ("sigmoid", "tanh"), rules)
    ratio, spread = grad_to_weight(records), first_to_last(records)
    return (nan if ratio is None else ratio, nan if spread is None else spread,
            dead.share if dead else nan, pinned.share if pinned else nan)


# Per number: whether a large value is the alarming one, and its threshold
RULES = ProbeRules()
ALARMS = {"grad_to_weight": (True, RULES.exploding_ratio), "first_to_last": (False, RULES.vanishing_ratio),
          "dead": (True, RULES.dead_share), "pinned": (True, RULES.saturated_share)}
OWN = {"exploding_gradients": "grad_to_weight", "vanishing_gradients": "first_to_last", "dying_relu": "dead",
       "saturated_units": "pinned"}


def closest(values: list[float], high_alarms: bool) -> float:
    values = [v for v in values if not math.isnan(v)]
    return (max if high_alarms else min)(values, default=float("nan"))


def weakest(runs: list[list[Epoch]], field: str) -> float:
    """The run that came nearest to no alarm: its most alarming value within 3 epochs, the least of those."""
    high = ALARMS[field][0]
    best = [closest([getattr(e, field) for e in run[:3]], high) for run in runs]
    return closest(best, not high)


def corpus(seeds: int, healthy_seeds: int, only: str | None) -> None:
    names = ("digits", "wine", "cancer", "digits-image", "wine-raw", "cancer-raw")
    data = {name: load(name) for name in names}
    print("| runs | seeds | epochs with a badge | built badge within 3 epochs | any badge within 3 epochs "
          "| stuck units on the whole training set | other badges | nearest to the line |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    healthy_epochs = healthy_alarms = 0
    for case in cases():
        if only and only not in case.name:
            continue
        n = healthy_seeds if case.expect is None else seeds
        runs = [run_case(case, seed, data) for seed in range(n)]
        badges = [e.badge for run in runs for e in run]
        alarms = sum(b != "ok" for b in badges)
        others = Counter(b for b in badges if b not in ("ok", case.expect))
        other = ", ".join(f"{k} {v}" for k, v in others.most_common()) or "-"
        if case.expect is None:
            healthy_epochs, healthy_alarms = healthy_epochs + len(badges), healthy_alarms + alarms
            shown = anything = present = ""
            near = ", ".join(f"{f} {closest([getattr(e, f) for r in runs for e in r], h):.3g}"
                             for f, (h, _) in ALARMS.items())
        else:
            found = sum(any(e.badge == case.expect for e in run[:3]) for run in runs)
            shown, field, present = f"{found}/{n} ({found / n:.0%})", OWN[case.expect], "-"
            seen = sum(any(e.badge != "ok" for e in run[:3]) for run in runs)
            anything = f"{seen}/{n} ({seen / n:.0%})"
            if field in ("dead", "pinned"):
                there = sum(any(e.stuck_in_all >= ALARMS[field][1] for e in run[:3]) for run in runs)
                present = f"{there}/{n}"
            near = f"{field} {weakest(runs, field):.3g}"
        print(f"| {case.name} | {n} | {alarms}/{len(badges)} | {shown} | {anything} | {present} | {other} | {near} |",
              flush=True)
    if healthy_epochs:
        share = healthy_alarms / healthy_epochs
        print(f"\nhealthy epochs with a badge: {healthy_alarms}/{healthy_epochs} ({share:.1%})")
    print("thresholds: " + ", ".join(f"{f} {'>' if h else '<'} {t:g}" for f, (h, t) in ALARMS.items()))


def epoch_seconds(model: nn.Module, step: Callable, x: torch.Tensor, y: torch.Tensor,
                  probe: GradientProbe) -> tuple[float, float]:
    """(training seconds, probe seconds) of one epoch: the gradient probe on the batches `probed_batches` picks,
    then the activation probe on the epoch's first batch and the diagnosis."""
    batches = (len(x) + BATCH - 1) // BATCH
    probed = probed_batches(batches)
    train_s = probe_s = 0.0
    model.train()
    for i in range(batches):
        xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
        t0 = time.perf_counter()
        step(xb, yb)
        t1 = time.perf_counter()
        train_s += t1 - t0
        if i + 1 in probed:
            probe.record()
            probe_s += time.perf_counter() - t1
    t0 = time.perf_counter()
    diagnose_gradients(1, probe.take(), probe_activations(model, x[:BATCH]))
    return train_s, probe_s + time.perf_counter() - t0


def steps(model: nn.Module) -> dict[str, Callable]:
    """The chapter's autograd step and the fused MLP step of engine.training.accel (the console's default on a CPU)."""
    from engine.training.accel.fused_mlp import FusedMLPStep
    from engine.training.loop import PlainStep

    plain_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    plain = PlainStep(model, model, nn.CrossEntropyLoss(), plain_opt, torch.amp.GradScaler("cpu", enabled=False),
                      None, torch.device("cpu"), 0.0)
    fused = FusedMLPStep(model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True), 0.0, 0.0)
    return {"autograd": plain, "fused MLP": fused}


def cost(rounds: int) -> None:
    digits = load("digits")
    torch.manual_seed(0)
    mnist = (torch.randn(60_000, 784), torch.randint(0, 10, (60_000,)))
    print("| data | step | batches | epoch's training (median) | probes (median) | share |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (x, y) in (("digits, MLP 256-128", digits), ("60k x 784 synthetic, MLP 256-128", mnist)):
        model = MLP(x.shape[1], 10, (256, 128), 0.3)
        probe, batches = GradientProbe(model), (len(x) + BATCH - 1) // BATCH
        for step_name, step in steps(model).items():
            epoch_seconds(model, step, x, y, probe)  # warm-up
            timings = [epoch_seconds(model, step, x, y, probe) for _ in range(rounds)]
            train = statistics.median(t for t, _ in timings)
            spent = statistics.median(p for _, p in timings)
            print(f"| {name} | {step_name} | {batches} | {train * 1000:.0f} ms | {spent * 1000:.1f} ms "
                  f"| {spent / train:.2%} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--healthy-seeds", type=int, default=5)
    parser.add_argument("--cost", action="store_true", help="time the probes instead of running the corpus")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    parser.add_argument("--only", help="run the cases whose name holds this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if args.cost:
        cost(args.rounds)
    else:
        corpus(args.seeds, args.healthy_seeds, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
