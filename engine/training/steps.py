"""One training step: zero_grad → forward → loss → backward → optimizer step (chapter 6.1).

`build_step` picks how. `AutogradStep` is the chapter's template and works
for every model, device and precision. `FusedMLPStep` makes the same updates
for the built-in MLP on the CPU in fp32 with its backward pass written out:
no autograd graph, gradients written in place into preallocated `.grad`
tensors, and fused Adam called without `Optimizer.step`'s per-call Python.
On small batches that overhead, not arithmetic, is most of a step.

A step takes a batch and returns `(loss, logits)`: the loss a 0-d tensor,
left on the device, for the loop's running metrics.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.settings.config import SettingsError
from engine.models.layers import WORD_HIGH, WORD_LOW, keep_probability, lane_threshold, mask_words
from engine.models.networks import MLP


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """The autocast context of a precision (`amp_dtype` None: fp32, no autocast).

    The trainer's evaluation uses it too.
    """
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()


def resolve_precision(setting: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """`training.precision` on a device: the autocast dtype (None: fp32) and how the run's first lines name it."""
    if setting == "fp32" or (setting == "auto" and device.type != "cuda"):
        return None, "fp32"
    if setting == "auto":
        return (
            (torch.bfloat16, "bf16 autocast")
            if torch.cuda.is_bf16_supported()
            else (torch.float16, "fp16 autocast + GradScaler")
        )
    if setting == "fp16":
        if device.type != "cuda":
            raise SettingsError(
                f"training.precision = 'fp16': needs a CUDA device (training on {device.type}); use auto, fp32 or bf16"
            )
        return torch.float16, "fp16 autocast + GradScaler"
    return torch.bfloat16, "bf16 autocast"


class AutogradStep:
    """Chapter 6.1's step, for any model: autocast and GradScaler when asked for, gradient clipping."""

    description = "autograd"

    def __init__(
        self,
        model: nn.Module,
        forward: Callable,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        amp_dtype: torch.dtype | None,
        device: torch.device,
        grad_clip: float,
    ):
        self.model, self.forward, self.criterion, self.optimizer, self.scaler = (
            model,
            forward,
            criterion,
            optimizer,
            scaler,
        )
        self.grad_clip = grad_clip
        self.device, self.amp_dtype = device, amp_dtype

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            out = self.forward(xb)
            loss = self.criterion(out, yb)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
        return loss.detach(), out.detach()


class FusedMLPStep:
    """The built-in MLP's step with the backward pass written out (CPU, fp32).

    Forward: per hidden layer z = x·Wᵀ + b, a = relu(z) ⊙ m, with m the dropout
    mask (0 or 1/keep) drawn exactly as `engine.models.layers.Dropout` draws it, in
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
        self._adam = _direct_fused_adam(optimizer)

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
    `engine.models.layers.dropout_mask` draws for each layer in turn (one draw of
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


def _direct_fused_adam(optimizer: torch.optim.Optimizer) -> Callable[[], None] | None:
    """A call of the fused Adam(W) kernel that `optimizer.step()` would make, without its per-step Python.

    Only for the plain case: one param group, fused, no amsgrad, maximize,
    capturable or differentiable. None otherwise (the step then calls
    `optimizer.step()`). Tests check it against `optimizer.step()`.
    """
    kernel = getattr(torch, "_fused_adamw_" if isinstance(optimizer, torch.optim.AdamW) else "_fused_adam_", None)
    if (
        kernel is None
        or type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW)
        or len(optimizer.param_groups) != 1
    ):
        return None
    group = optimizer.param_groups[0]
    if not group.get("fused") or any(group.get(k) for k in ("amsgrad", "maximize", "capturable", "differentiable")):
        return None
    if isinstance(optimizer, torch.optim.Adam) and group.get("decoupled_weight_decay"):
        kernel = torch._fused_adamw_

    one = torch.ones(
        (), device=group["params"][0].device
    )  # add_(a tensor): a third of the cost of add_(1) on a 0-d tensor

    def step() -> None:
        group = optimizer.param_groups[
            0
        ]  # read at each step: load_state_dict (a resume) replaces the groups and the state
        params, state = group["params"], optimizer.state
        states = [state[p] for p in params]
        steps = [s["step"] for s in states]
        for s in steps:
            s.add_(one)
        beta1, beta2 = group["betas"]
        kernel(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    return step


def fused_step_applies(model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None, compiled: bool) -> bool:
    """Whether `FusedMLPStep` makes the same updates as autograd: the built-in MLP, on the CPU, in fp32, not compiled.

    Its dropout must draw its masks with `dropout_mask` (a keep probability
    strictly between 0 and 1) or not at all (p = 0).
    """
    if type(model) is not MLP or device.type != "cpu" or amp_dtype is not None or compiled:
        return False
    return all(
        d.p == 0 or 0.0 < keep_probability(1.0 - d.p) < 1.0
        for d in (getattr(model, f"dropout{i}") for i in range(1, model.depth + 1))
    )


def build_step(
    model: nn.Module,
    forward: Callable,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
    device: torch.device,
    *,
    grad_clip: float,
    label_smoothing: float,
    fused: bool,
    reduce_grads: Callable[[], None] | None = None,
) -> AutogradStep | FusedMLPStep:
    """The fused step where `fused` is on and it applies, else chapter 6.1's autograd step."""
    if fused and fused_step_applies(model, device, amp_dtype, compiled=forward is not model):
        return FusedMLPStep(model, optimizer, label_smoothing, grad_clip, reduce_grads)
    return AutogradStep(model, forward, criterion, optimizer, scaler, amp_dtype, device, grad_clip)
