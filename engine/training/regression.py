"""Regression as a task: its loss on the standardised target, its constant predictor, its settings' checks.

The target is standardised with the training split's mean and std (engine.data.preprocessing keeps them with the
checkpoint), so the loss reads alike on every dataset: the mean predictor's validation MSE is about 1 (the
validation target's variance over the training one's). MAE, RMSE and R² are reported in the target's own units
(engine.training.loop.Sums).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.settings.config import Settings, SettingsError, TrainingSettings
from engine.training.baselines import Baseline, constant_baseline

HUBER_DELTA = 1.0  # in standard deviations of the target: errors beyond it count linearly


class RegressionLoss(nn.Module):
    """MSE (or Huber) between the model's one output unit and the standardised target."""

    def __init__(self, kind: str = "mse"):
        super().__init__()
        self.kind = kind

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = output.reshape(-1).float()
        if self.kind == "huber":
            return F.huber_loss(output, target.float(), delta=HUBER_DELTA)
        return F.mse_loss(output, target.float())


def criterion_for(t: TrainingSettings, task: str) -> nn.Module:
    """training.loss for the task the data decided (model.task = auto decides once the label is read)."""
    if task != "regression":
        if t.loss in ("mse", "huber"):
            raise SettingsError(f"training.loss = '{t.loss}': the label was read as classes (model.task = 'auto'); "
                                "set model.task = 'regression', or training.loss = 'auto'")
        return nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    return RegressionLoss("huber" if t.loss == "huber" else "mse")


def task_baseline(s: Settings, data: Any) -> Baseline | None:
    """The constant predictor of the run's task: the class priors, or the training mean for a regression.

    Refuses, in one line, settings the task the data decided cannot use (the monitor, the loss).
    """
    if data.task != "regression":
        return constant_baseline(data.label_counts)
    t = s.training
    if t.monitor.endswith("_acc"):
        raise SettingsError(f"training.monitor = '{t.monitor}': the label was read as a regression target, "
                            f"which has no accuracy; monitor {t.monitor[:-4]}_loss (or set model.task)")
    if t.loss == "cross_entropy":
        raise SettingsError("training.loss = 'cross_entropy': the label was read as a regression target; "
                            "use mse or huber (or set model.task = 'classification')")
    return mean_baseline(data.val, criterion_for(t, "regression"))


def mean_baseline(val_batches: Any, criterion: nn.Module) -> Baseline | None:
    """The training mean predicted for every validation sample: 0 on the standardised target."""
    y = getattr(val_batches, "y", None)
    if y is None:  # per-sample batches: the targets of one pass
        y = torch.cat([yb.reshape(-1) for _, yb in val_batches]) if len(val_batches) else torch.zeros(0)
    if len(y) == 0:
        return None
    y = y.float().cpu()
    loss = float(criterion(torch.zeros_like(y), y))
    return Baseline(loss, None, 1, regression=True)
