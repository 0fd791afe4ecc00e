"""Chapter 6.1's training template, as the engine runs it.

One epoch: `model.train()`, then for each batch zero_grad → forward → loss → backward → (clip) → step
(`PlainStep`, or a faster step of engine.training.accel that makes the same updates); then one validation
pass in eval mode under `torch.no_grad()` (`validate`, which `trainconsole eval` reuses). The trainer
(engine.training.trainer) runs epochs of it and decides, between batches, whether to go on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from engine.training.precision import autocast

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # a batch → (loss, logits)


@dataclass
class Position:
    """Where the run is: the epoch being trained (from 1), the batches done in it, the samples it has seen."""

    epoch: int
    batches: int  # in the epoch
    batch: int = 0
    seen: int = 0  # samples, this process's


@dataclass(frozen=True)
class Scores:
    """An epoch's scores on one split: loss, and accuracy (classification) or MAE, RMSE and R² (regression)."""

    loss: float
    accuracy: float | None
    mae: float | None = None  # in the target's units
    rmse: float | None = None
    r2: float | None = None
    seen: int = 0


class Sums:
    """An epoch's loss and correct predictions as sums over samples, kept on the device: no sync per batch.

    A regression (float targets, standardised) sums |error|, error², target and target² instead of correct
    predictions: MAE, RMSE and R² follow from them, in the target's units once multiplied by its std.
    """

    def __init__(self, device: torch.device, loss_sum: float = 0.0, correct: int = 0, seen: int = 0,
                 errors: list[float] | None = None):
        self.loss_sum = torch.full((), float(loss_sum), device=device)
        self.correct = torch.full((), int(correct), dtype=torch.long, device=device)
        self.seen = seen
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.errors = torch.tensor(errors or [0.0] * 4, dtype=dtype, device=device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        self.loss_sum.add_(loss.float(), alpha=n)
        if targets.is_floating_point():
            e = logits.reshape(-1).float() - targets
            self.errors += torch.stack([e.abs().sum(), (e * e).sum(), targets.sum(), (targets * targets).sum()])
        else:
            self.correct += (logits.argmax(1) == targets).sum()
        self.seen += n

    def reduced(self, collectives, regression: bool) -> dict:
        """The sums over every rank (one collective): loss_sum, correct, seen, and a regression's errors."""
        values = collectives.sums(self.loss_sum, self.correct, self.seen, *(self.errors if regression else ()))
        return {"loss_sum": values[0], "correct": int(values[1]), "seen": int(values[2]),
                **({"errors": values[3:]} if regression else {})}

    def scores(self, collectives, target: tuple[float, float] | None) -> Scores:
        """The epoch's scores over every rank; `target`: a regression's (mean, std), None for classes."""
        r = self.reduced(collectives, target is not None)
        n = r["seen"]
        loss = r["loss_sum"] / n if n else float("nan")
        if target is None:
            return Scores(loss, r["correct"] / max(n, 1), seen=n)
        abs_sum, sq_sum, y_sum, y_sq = r["errors"]
        std, n = target[1], max(n, 1)
        total = y_sq - y_sum * y_sum / n  # the split's own spread: R² against its own mean
        r2 = 1.0 - sq_sum / total if total > 0 else float("nan")
        return Scores(loss, None, std * abs_sum / n, std * math.sqrt(max(sq_sum, 0.0) / n), r2, r["seen"])

    def running_loss(self) -> float:
        return float(self.loss_sum) / max(self.seen, 1)  # a sync: the trainer asks at most 10 times a second


class PlainStep:
    """Chapter 6.1's step, for any model: autocast and GradScaler where the precision asks, gradient clipping."""

    description = "autograd"

    def __init__(self, model: nn.Module, forward: Callable, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, device: torch.device, grad_clip: float):
        self.model, self.forward, self.criterion, self.optimizer = model, forward, criterion, optimizer
        self.scaler, self.amp_dtype, self.device, self.grad_clip = scaler, amp_dtype, device, grad_clip

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            logits = self.forward(xb)
            loss = self.criterion(logits, yb)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()


def train_epoch(model: nn.Module, batches: Batches, step: Step, sums: Sums, at: Position,
                device: torch.device) -> Iterator[Position]:
    """The training phase of one epoch: yields the position after each batch.

    The caller acts between batches (progress, pause, stop) and stops iterating to end the epoch early; the
    next batch is drawn only when it asks for it.
    """
    model.train()
    for xb, yb in batches:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss, logits = step(xb, yb)  # zero_grad → forward → loss → backward → (clip) → step
        sums.add(loss, logits, yb)
        at.batch, at.seen = at.batch + 1, at.seen + yb.shape[0]
        yield at


@torch.no_grad()
def validate(model: nn.Module, forward: Callable, batches: Batches, criterion: nn.Module, device: torch.device,
             amp_dtype: torch.dtype | None, confusion: torch.Tensor | None = None) -> Sums:
    """The validation phase: eval mode, no_grad, sums over samples (and the confusion matrix, when given one)."""
    model.eval()
    sums = Sums(device)
    for xb, yb in batches:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = forward(xb)
            loss = criterion(logits, yb)
        sums.add(loss, logits, yb)
        if confusion is not None:
            k = confusion.shape[0]
            confusion += torch.bincount(yb * k + logits.argmax(1), minlength=k * k).reshape(k, k)
    return sums
