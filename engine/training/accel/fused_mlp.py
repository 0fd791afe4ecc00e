"""The built-in MLP's training step with its backward pass written out (CPU, fp32).

It makes the same updates as the plain step (engine.training.loop.PlainStep) for the built-in MLP: no autograd
graph, gradients written in place into preallocated `.grad` tensors, and fused Adam called without
`Optimizer.step`'s per-call Python (fused_adam.py). On small batches that overhead, not arithmetic, is most of a
step. A step takes a batch and returns `(loss, logits)`, the loss a 0-d tensor left on the device.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.networks import MLP
from engine.training.accel.dropout import WORD_HIGH, WORD_LOW, keep_probability, lane_threshold, mask_words
from engine.training.accel.fused_adam import direct_fused_adam

class FusedMLPStep:
    """The built-in MLP's step with the backward pass written out (CPU, fp32).

    Forward: per hidden layer z = x·Wᵀ + b, a = relu(z) ⊙ m, with m the dropout
    mask (0 or 1/keep) drawn exactly as `engine.training.accel.dropout.Dropout` draws it, in
    the same order, so both steps consume the random stream alike. Backward,
    from d = ∂loss/∂logits = (softmax − target) / n:
        ∂W = dᵀ·a_prev, ∂b = Σ d, ∂a_prev = d·W, then ∂z = ∂a ⊙ [a > 0] / keep,
    since a > 0 exactly where z > 0 and the element was kept (m = 1/keep).
    The first layer's input gradient is never needed and never computed.
    """

    description = "fused MLP step (backward written out, no autograd)"

    def __init__(
        self,
        model: MLP,
        optimizer: torch.optim.Optimizer,
        label_smoothing: float,
        grad_clip: float,
        reduce_grads: Callable[[], None] | None = None,
    ):
        self.optimizer = optimizer
        # in a run of several processes: averages the gradients over the ranks (what DDP does for autograd)
        self.reduce_grads = reduce_grads
        if reduce_grads is not None:
            self.description += ", gradients averaged over the processes"
        self.smoothing = label_smoothing
        self.grad_clip = grad_clip
        self.layers = [getattr(model, f"fc{i}") for i in range(1, model.depth + 2)]
        # per hidden layer: the keep probability its masks are drawn with, or None without dropout
        self.keeps = [
            keep_probability(1.0 - d.p) if d.p > 0 else None
            for d in (getattr(model, f"dropout{i}") for i in range(1, model.depth + 1))
        ]
        self.params = list(model.parameters())  # their .grad is written in place by every step
        self._buffers: dict[int, _BatchBuffers] = {}  # by batch size: an epoch's last batch may be smaller
        self._adam = direct_fused_adam(optimizer)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for p in self.params:
            if p.grad is None:  # someone called zero_grad(set_to_none=True): the gradients are written into .grad
                p.grad = torch.zeros_like(p)
        with torch.no_grad():
            x = xb.flatten(1)
            buffers = self._buffers.get(x.shape[0])
            if buffers is None:
                buffers = self._buffers[x.shape[0]] = _BatchBuffers(
                    x.shape[0], [fc.out_features for fc in self.layers[:-1]], self.keeps, self.smoothing
                )
            buffers.draw()
            inputs = [x]
            for fc, mask in zip(self.layers, buffers.masks):
                a = torch.addmm(fc.bias, x, fc.weight.t()).relu_()
                if mask is not None:
                    a.mul_(mask)
                inputs.append(a)
                x = a
            last = self.layers[-1]
            logits = torch.addmm(last.bias, x, last.weight.t())
            log_probs = torch.log_softmax(logits, 1)
            if self.smoothing:
                loss = F.cross_entropy(logits, yb, label_smoothing=self.smoothing)
            else:
                loss = F.nll_loss(log_probs, yb)
            grad = self._logits_grad(log_probs, yb, buffers.target)
            for i in range(len(self.layers) - 1, -1, -1):
                fc, a_prev = self.layers[i], inputs[i]
                torch.mm(grad.t(), a_prev, out=fc.weight.grad)
                torch.sum(grad, 0, out=fc.bias.grad)
                if i:
                    grad = torch.ops.aten.threshold_backward(torch.mm(grad, fc.weight), a_prev, 0)
                    if self.keeps[i - 1] is not None:
                        grad.mul_(1.0 / self.keeps[i - 1])
        if self.reduce_grads is not None:
            self.reduce_grads()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self._adam is not None and self.optimizer.state:
            self._adam()
        else:  # SGD, or Adam's first step, which creates its state
            self.optimizer.step()
        return loss, logits

    def _logits_grad(self, log_probs: torch.Tensor, y: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
        """(softmax − target) / n, the target being one-hot or label-smoothed; overwrites log_probs."""
        n, classes = log_probs.shape
        grad = log_probs.exp_().scatter_add_(1, y.unsqueeze(1), hit)
        if self.smoothing:
            grad.sub_(self.smoothing / classes)
        return grad.mul_(1.0 / n)


class _BatchBuffers:
    """What a step of one batch size keeps from step to step: its dropout masks and its target column.

    The masks are drawn with one call into kept buffers. Their words are those
    `engine.training.accel.dropout.dropout_mask` draws for each layer in turn (one draw of
    their total is the same stream, checked by the tests), and each mask is
    built from its layer's lanes by the same rule. The step is CPU-only, so
    both live on the CPU.
    """

    def __init__(self, n: int, widths: list[int], keeps: list[float | None], smoothing: float):
        self.target = torch.full((n, 1), -(1.0 - smoothing))  # added at each label's softmax: one-hot or smoothed
        counts = [mask_words(n * w) if keep is not None else 0 for w, keep in zip(widths, keeps)]
        self.words = torch.empty(sum(counts), dtype=torch.int64)
        self.masks: list[torch.Tensor | None] = []
        self._rules = []
        start = 0
        for w, keep, count in zip(widths, keeps, counts):
            if keep is None:
                self.masks.append(None)
                continue
            lanes = self.words[start : start + count].view(torch.int16)[: n * w].view(n, w)
            mask = torch.empty(n, w)
            self.masks.append(mask)
            self._rules.append((lanes, mask, lane_threshold(keep), 1.0 / keep))
            start += count

    def draw(self) -> None:
        if not self._rules:
            return
        self.words.random_(WORD_LOW, WORD_HIGH)
        for lanes, mask, threshold, scale in self._rules:
            mask.copy_(lanes).lt_(threshold).mul_(scale)


def fused_step_applies(model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None, compiled: bool) -> bool:
    """Whether `FusedMLPStep` makes the same updates as autograd: the built-in MLP, on the CPU, in fp32, not compiled.

    Its dropout must draw its masks with `dropout_mask` (a keep probability
    strictly between 0 and 1) or not at all (p = 0).
    """
    if type(model) is not MLP or device.type != "cpu" or amp_dtype is not None or compiled:
        return False
    if getattr(model, f"fc{model.depth + 1}").out_features == 1:  # a regression's one unit: its loss is not CE
        return False
    return all(
        d.p == 0 or 0.0 < keep_probability(1.0 - d.p) < 1.0
        for d in (getattr(model, f"dropout{i}") for i in range(1, model.depth + 1))
    )
