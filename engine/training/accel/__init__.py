"""Speed-ups, in one room. The loop asks for its step and its CPU threads here and gets the plain ones or
faster ones that make the same updates; `training.accel = "off"` trains with plain PyTorch alone.

- dropout.py: the built-in models' dropout draws its masks 64 bits at a time on the CPU;
- fused_mlp.py, fused_adam.py: the built-in MLP's backward pass written out, fused Adam called directly;
- threads.py: a CPU run times its first steps on one thread and on the free cores, and keeps the faster.

Each speed-up's own gain is measured in BENCHMARKS.md, so that one that no longer pays can be removed, and
tests check each against the plain PyTorch it replaces.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from engine.device import thread_choices, training_step_flops
from engine.models.networks import MLP
from engine.settings.config import Settings
from engine.training.accel.dropout import use_fast_dropout
from engine.training.accel.fused_mlp import FusedMLPStep, fused_step_applies
from engine.training.accel.threads import ThreadPlan
from engine.training.loop import PlainStep, Step


def on(settings: Settings) -> bool:
    return settings.training.accel != "off"


def speed_up_model(model: nn.Module, settings: Settings) -> None:
    """The built-in models' dropout, faster on the CPU (a user's model is left as it was written)."""
    if on(settings) and type(model).__module__ == MLP.__module__:
        use_fast_dropout(model)


def fused_step(model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None, settings: Settings) -> bool:
    """Whether the run trains with the fused MLP step (then several processes average gradients without DDP)."""
    return on(settings) and fused_step_applies(model, device, amp_dtype, settings.training.compile)


def plan_step(model: nn.Module, forward: Callable, criterion: nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, device: torch.device, settings: Settings,
              reduce_grads: Callable[[], None] | None = None) -> Step:
    """The run's step: the fused MLP step where it applies and `accel` allows it, else the chapter's plain step."""
    t = settings.training
    return build_step(model, forward, criterion, optimizer, scaler, amp_dtype, device, grad_clip=t.grad_clip,
                      label_smoothing=t.label_smoothing, fused=on(settings) and not t.compile,
                      reduce_grads=reduce_grads)


def build_step(model: nn.Module, forward: Callable, criterion: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, device: torch.device, *,
               grad_clip: float, label_smoothing: float, fused: bool,
               reduce_grads: Callable[[], None] | None = None) -> Step:
    """The fused step where `fused` is asked for and makes the same updates as autograd, else the plain step."""
    if fused and fused_step_applies(model, device, amp_dtype, compiled=forward is not model):
        return FusedMLPStep(model, optimizer, label_smoothing, grad_clip, reduce_grads)
    return PlainStep(model, forward, criterion, optimizer, scaler, amp_dtype, device, grad_clip)


def plan_threads(model: nn.Module, in_shape: tuple[int, ...], device: torch.device, settings: Settings, *,
                 set_threads: bool, follow: bool, sharing: int = 1) -> ThreadPlan:
    """The CPU threads: the counts the first steps are timed on, or the one count of the user or the caller.

    `set_threads` False: the caller set them (the console leaves a core to itself). `follow`: the count follows
    the cores other processes leave free. With `accel = "off"` the run keeps `device.threads`, or PyTorch's
    default, for its whole length.
    """
    requested = settings.device.threads
    if not on(settings):
        if set_threads and requested:
            torch.set_num_threads(requested)
        return ThreadPlan((torch.get_num_threads(),), follow=False)
    follow = follow and device.type == "cpu"
    if not (set_threads and device.type == "cpu"):
        return ThreadPlan((torch.get_num_threads(),), follow)
    sample = torch.zeros((1, *in_shape), device=device)
    flops = training_step_flops(model, sample, settings.data.batch_size) if not requested else None
    choices = thread_choices(requested, flops, sharing=sharing)
    torch.set_num_threads(choices[0])
    return ThreadPlan(choices, follow)
