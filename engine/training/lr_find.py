"""The learning-rate range test (Smith 2015), as fastai's `lr_find` and Lightning's `Tuner.lr_find` run it.

The learning rate grows exponentially from `start_lr` to `end_lr`, one training step each, through the run's
own step (`build_step`: the fused step, AMP, clipping, the device), so what it measures is what training will
run. The loss is smoothed (a bias-corrected moving average, beta 0.98); the sweep stops once the smoothed loss
exceeds `diverge` times its lowest value. The model, optimizer, gradients and random state are put back
afterwards, bit for bit; no run folder or checkpoint is touched.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from engine.settings.config import LrFindSettings, Settings

SKIP_END = 5  # the last points before a stop are the divergence itself (fastai skips them too)


@dataclass(frozen=True)
class LrPoint:
    lr: float
    loss: float  # this step's loss
    smoothed: float


@dataclass(frozen=True)
class LrFindResult:
    points: list[LrPoint]
    suggestion: float | None  # None: too few points to suggest from
    index: int | None  # the suggested point
    method: str  # steepest or valley
    stopped: str  # completed, diverged (the smoothed loss went past the threshold) or cancelled
    steps: int  # the steps asked for

    def to_dict(self) -> dict:
        return asdict(self)


def sweep_rates(start: float, end: float, steps: int) -> list[float]:
    """`steps` rates from `start` to `end`, evenly spaced on a log scale."""
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


def suggest(lrs: list[float], losses: list[float], method: str, skip_begin: int) -> int | None:
    """The index of the suggested rate on a (smoothed) loss curve, or None with fewer than 3 usable points.

    The first `skip_begin` points (the loss has not moved yet) and the last SKIP_END (the climb) are left out.
    steepest: the point whose next step falls most per decade of learning rate (fastai's `steep`; Lightning
    takes the same minimum of the gradient). valley: the middle of the longest descending run of points
    (fastai's `valley`, its default): robust where noise makes one steep step.
    """
    end = len(losses) - SKIP_END if len(losses) - SKIP_END - skip_begin >= 3 else len(losses)
    usable = [i for i in range(min(skip_begin, max(len(losses) - 3, 0)), end) if math.isfinite(losses[i])]
    if len(usable) < 3:
        return None
    if method == "valley":
        return _valley(usable, losses)
    slopes = [
        ((losses[b] - losses[a]) / (math.log10(lrs[b]) - math.log10(lrs[a])), a) for a, b in zip(usable, usable[1:])
    ]
    return min(slopes)[1]


def _valley(usable: list[int], losses: list[float]) -> int:
    """fastai's valley: the longest decreasing subsequence of the losses, taken as the run of that many points
    before its end (a lone noisy point early on does not stretch it), and its middle."""
    length = [1] * len(usable)  # the longest descent ending at each point
    for i in range(len(usable)):
        for j in range(i):
            if losses[usable[i]] < losses[usable[j]]:
                length[i] = max(length[i], length[j] + 1)
    last = max(range(len(usable)), key=lambda i: (length[i], -i))
    first = last - length[last] + 1
    return usable[first + (last - first) // 2]


@contextmanager
def restored(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None):
    """Everything the sweep changes is put back on leaving, bit for bit: weights and buffers, the optimizer's state
    and learning rates, the gradients, the train/eval mode, the random number generators and the GradScaler."""
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = copy.deepcopy(optimizer.state_dict())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    scaled = copy.deepcopy(scaler.state_dict()) if scaler is not None and scaler.is_enabled() else None
    try:
        yield
    finally:
        with torch.no_grad():
            model.load_state_dict(weights)
        optimizer.load_state_dict(state)
        for p, g in zip(model.parameters(), grads):
            p.grad = g
        for m, mode in zip(model.modules(), modes):
            m.training = mode
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if scaled is not None:
            scaler.load_state_dict(scaled)


def cycled(batches: Iterable) -> Iterator:
    """The batches again and again (a new epoch's order each time); ends only when an epoch yields none."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return


def sweep(
    step: Callable,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    rules: LrFindSettings,
    device: torch.device,
    *,
    on_point: Callable[[int, LrPoint], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[list[LrPoint], str]:
    """The sweep itself: one `step(xb, yb)` per rate; the points and why it ended. Changes the model and
    optimizer it trains (`find_lr` and the tests wrap it in `restored`)."""
    points: list[LrPoint] = []
    average, best = 0.0, math.inf
    source = cycled(batches)
    for i, lr in enumerate(sweep_rates(rules.start_lr, rules.end_lr, rules.steps)):
        if cancelled is not None and cancelled():
            return points, "cancelled"
        batch = next(source, None)
        if batch is None:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr
        xb, yb = batch
        loss = float(step(xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))[0])
        if not math.isfinite(loss):
            return points, "diverged"
        average = rules.smoothing * average + (1 - rules.smoothing) * loss
        smoothed = average / (1 - rules.smoothing ** (i + 1))
        points.append(LrPoint(lr, loss, smoothed))
        if on_point is not None:
            on_point(i, points[-1])
        if rules.diverge > 0 and i > 0 and smoothed > rules.diverge * best:
            return points, "diverged"
        best = min(best, smoothed)
    return points, "completed"


def describe(result: LrFindResult, settings: Settings) -> str:
    """What the sweep did and what it suggests, in two lines."""
    r = settings.lr_find
    points = result.points
    span = f"from {points[0].lr:.2g} to {points[-1].lr:.2g}" if points else "no step"
    why = {
        "diverged": f"stopped: the smoothed loss passed {r.diverge:g} x its lowest",
        "completed": "every step",
        "cancelled": "cancelled",
    }[result.stopped]
    line = f"lr-find: {len(points)} of {result.steps} steps, {span} ({why})"
    if result.suggestion is None:
        return f"{line}\nno suggestion: too few steps before the loss diverged (lower lr_find.start_lr or raise steps)"
    how = "steepest descent of the smoothed loss" if result.method == "steepest" else "middle of the longest descent"
    return f"{line}\nsuggested learning rate: {result.suggestion:.3g} ({how})"


def loss_axis(points: list[LrPoint]) -> tuple[float, float]:
    """The loss axis a picture of the curve shows: the climb at the end would flatten the rest, so it stops at
    1.5 x the starting smoothed loss."""
    ys = [p.smoothed for p in points if math.isfinite(p.smoothed)] or [0.0]
    top = min(max(ys), 1.5 * max(ys[0], min(ys)))
    return min(ys) - 0.02 * (top - min(ys)), top


def result_of(points: list[LrPoint], stopped: str, rules: LrFindSettings) -> LrFindResult:
    """The suggestion on the smoothed curve, rounded to 3 significant digits (a rate to type)."""
    index = suggest([p.lr for p in points], [p.smoothed for p in points], rules.suggestion, rules.steps // 10)
    lr = None if index is None else float(f"{points[index].lr:.3g}")
    return LrFindResult(points, lr, index, rules.suggestion, stopped, rules.steps)


def find_lr(
    settings: Settings,
    *,
    on_point: Callable[[int, LrPoint], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> LrFindResult:
    """The range test on the model, data and optimizer the settings describe, built as a run builds them.

    Raises SettingsError as a run's set-up does. Trains in one process (`device.processes` is not used: with N
    processes a step sees N x batch_size samples, so scale the rate found for that).
    """
    from engine.data.loaders import build_data
    from engine.device import resolve_device
    from engine.models.networks import build_model
    from engine.training.optim import build_optimizer
    from engine.training import accel
    from engine.training.precision import resolve_precision
    from engine.training.regression import criterion_for
    from engine.training.snapshot import seed_everything

    s = settings.for_run()
    device = resolve_device(s.device.device)
    amp_dtype, _ = resolve_precision(s.training.precision, device)
    seed_everything(s.run.seed)
    data = build_data(s.data, s.run.seed, device, task=s.model.task)
    model = build_model(s.model, data.in_shape, data.num_classes).to(device)
    accel.speed_up_model(model, s)
    forward = torch.compile(model) if s.training.compile else model
    optimizer = build_optimizer(model, s.training, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    criterion = criterion_for(s.training, data.task)  # a regression's MSE on its standardised target
    step = accel.plan_step(model, forward, criterion, optimizer, scaler, amp_dtype, device, s)
    with restored(model, optimizer, scaler):
        points, stopped = sweep(step, optimizer, data.train, s.lr_find, device, on_point=on_point, cancelled=cancelled)
    return result_of(points, stopped, s.lr_find)
