"""Optimizers and learning-rate schedulers named in `[training]`."""

from __future__ import annotations

import torch
from torch import nn

from engine.config import TrainingSettings


def build_optimizer(model: nn.Module, t: TrainingSettings, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # foreach kernels batch the per-parameter updates; fused is faster still on CUDA.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, **fast)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, **fast)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, **fast)


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
