"""Chapter 6.1's training template, as the engine runs it.

One epoch: `model.train()`, then for each batch zero_grad → forward → loss → backward → (clip) → step
(`PlainStep`, or a faster step of engine.training.accel that makes the same updates); then one validation
pass in eval mode under `torch.no_grad()` (`validate`, which `trainconsole eval` reuses). The trainer
(engine.training.trainer) runs epochs of it and decides, between batches, whether to go on.
"""

from __future__ import annotations

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


class Sums:
    """An epoch's loss and correct predictions as sums over samples, kept on the device: no sync per batch."""

    def __init__(self, device: torch.device, loss_sum: float = 0.0, correct: int = 0, seen: int = 0):
        self.loss_sum = torch.full((), float(loss_sum), device=device)
        self.correct = torch.full((), int(correct), dtype=torch.long, device=device)
        self.seen = seen

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        self.loss_sum.add_(loss.float(), alpha=n)
        self.correct += (logits.argmax(1) == targets).sum()
        self.seen += n

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
