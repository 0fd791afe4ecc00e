"""When a run looks at its own gradients and activations (engine.training.probes), and how what they see meets the
loss's badge.

Gradient norms are read after the steps of two batches an epoch (`.grad` still holds them: no extra backward).
Activations are counted on one forward pass of the first full validation batch, which draws nothing from the
data's random order, so a probed run trains exactly as an unprobed one. On an epoch of fewer than SHORT_EPOCH
batches that pass would cost more than 2 % of it: it runs every other epoch there (epochs 1, 3, 5, ...), still
within a problem's first three epochs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import torch
from torch import nn

from engine.events import Diagnostic
from engine.training.probes import GradientProbe, diagnose_gradients, probe_activations, probed_batches

SHORT_EPOCH = 100  # batches


class RunProbes:
    def __init__(self, model: nn.Module, batches_per_epoch: int, val_batches: Iterable, device: torch.device):
        self.model, self.gradients = model, GradientProbe(model)
        self.probed = probed_batches(batches_per_epoch)
        self.every = 2 if batches_per_epoch < SHORT_EPOCH else 1
        self.inputs = _first_full_batch(val_batches, device)

    def after_step(self, batch: int) -> None:
        if batch in self.probed:
            self.gradients.record()

    def diagnose(self, epoch: int) -> Diagnostic | None:
        due = self.inputs is not None and (epoch - 1) % self.every == 0
        layers = probe_activations(self.model, self.inputs) if due else []
        return diagnose_gradients(epoch, self.gradients.take(), layers)


def _first_full_batch(batches: Iterable, device: torch.device) -> torch.Tensor | None:
    """The largest of the first validation batches (an idle unit looks dead on five samples); None without any."""
    best = None
    for i, (xb, _) in enumerate(batches):
        if best is None or xb.shape[0] > best.shape[0]:
            best = xb
        if i >= 1:
            break
    return best.to(device) if best is not None else None


def with_probes(loss: Diagnostic, probed: Diagnostic | None) -> Diagnostic:
    """One badge. NaN and DIVERGING stay first (the run is blowing up whatever the cause); otherwise the probe's
    badge names the cause before the loss's symptom. Either way the message says what else was seen."""
    if probed is None:
        return loss
    first, other = (loss, probed) if loss.status in ("nan", "diverging") else (probed, loss)
    if other.status == "ok":
        return first
    return replace(first, message=f"{first.message}; also {other.label}: {other.message}",
                   evidence={**other.evidence, **first.evidence})
