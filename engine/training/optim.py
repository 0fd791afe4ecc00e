"""Optimizers and learning-rate schedulers named in `[training]`."""

from __future__ import annotations

import torch
from torch import nn

from engine.settings.config import TrainingSettings


def build_optimizer(model: nn.Module, t: TrainingSettings, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        # fused SGD is faster on CUDA only; foreach batches the per-parameter updates elsewhere
        fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
        return _make(torch.optim.SGD, params, fast, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    # fused Adam(W): one kernel for every parameter, faster per step than foreach (torch >= 2.4; CUDA and CPU)
    return _make(cls, params, {"fused": True}, lr=t.lr, weight_decay=t.weight_decay)


def _make(cls, params, fast: dict, **kwargs) -> torch.optim.Optimizer:
    try:
        return cls(params, **kwargs, **fast)
    except (RuntimeError, TypeError, ValueError):  # older torch or a device without fused kernels
        return cls(params, **kwargs, foreach=True)


def build_scheduler(optimizer: torch.optim.Optimizer, t: TrainingSettings, batches_per_epoch: int):
    """None, or a scheduler: `onecycle` steps every batch, the others once per epoch."""
    lrs = torch.optim.lr_scheduler
    if t.scheduler == "step":
        return lrs.StepLR(optimizer, step_size=t.step_size, gamma=t.gamma)
    if t.scheduler == "cosine":
        return lrs.CosineAnnealingLR(optimizer, T_max=t.epochs)
    if t.scheduler == "onecycle":
        return lrs.OneCycleLR(optimizer, max_lr=t.lr, epochs=t.epochs, steps_per_epoch=max(1, batches_per_epoch))
    if t.scheduler == "plateau":
        mode = "min" if t.monitor.endswith("loss") else "max"
        return lrs.ReduceLROnPlateau(optimizer, mode=mode, factor=t.gamma, patience=max(1, t.patience // 2))
    return None
