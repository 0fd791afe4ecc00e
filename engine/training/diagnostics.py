"""The per-epoch diagnostic of chapter 8.3 and the overfitting onset of 8.1.

The chapter checks NaN last, so a NaN loss (for which every comparison is
False) could never be reported after an overfitting test; here NaN and
infinities come first.
"""

from __future__ import annotations

import math
from typing import Sequence

from engine.settings.config import DiagnosticsSettings
from engine.events import Diagnostic


def diagnose(
    epoch: int,
    train_loss: float,
    val_loss: float,
    train_acc: float,
    val_acc: float,
    rules: DiagnosticsSettings | None = None,
) -> Diagnostic:
    """`epoch` counts from 1, as printed."""
    rules = rules or DiagnosticsSettings()
    bad = {name: v for name, v in (("train_loss", train_loss), ("val_loss", val_loss)) if not math.isfinite(v)}
    if bad:
        names = " and ".join(f"{k} is {v}" for k, v in bad.items())
        return Diagnostic("nan", f"{names} at epoch {epoch}", {"train_loss": train_loss, "val_loss": val_loss})
    loss_gap = val_loss - train_loss
    acc_gap = train_acc - val_acc
    evidence = {"loss_gap": loss_gap, "acc_gap": acc_gap, "train_loss": train_loss, "val_loss": val_loss}
    if loss_gap > rules.overfit_loss_gap or acc_gap > rules.overfit_acc_gap:
        reasons = []
        if loss_gap > rules.overfit_loss_gap:
            reasons.append(f"val-train loss gap {loss_gap:+.4f} > {rules.overfit_loss_gap}")
        if acc_gap > rules.overfit_acc_gap:
            reasons.append(f"train-val accuracy gap {acc_gap:+.1%} > {rules.overfit_acc_gap:.0%}")
        return Diagnostic("overfitting", "; ".join(reasons), evidence)
    if train_loss > rules.underfit_loss and epoch > rules.underfit_after:
        return Diagnostic(
            "underfitting",
            f"train loss {train_loss:.4f} > {rules.underfit_loss} after {rules.underfit_after} epochs",
            {"train_loss": train_loss, "epoch": float(epoch)},
        )
    return Diagnostic("ok", f"loss gap {loss_gap:+.4f}, accuracy gap {acc_gap:+.1%}", evidence)


def overfitting_onset(val_losses: Sequence[float], rules: DiagnosticsSettings | None = None) -> int | None:
    """Chapter 8.1: once the last val loss exceeds its minimum by the margin, the epoch (from 1) of that minimum."""
    rules = rules or DiagnosticsSettings()
    finite = [v for v in val_losses if math.isfinite(v)]
    if len(val_losses) <= rules.onset_min_epochs or not finite or not math.isfinite(val_losses[-1]):
        return None
    best = min(finite)
    if val_losses[-1] > best * (1 + rules.onset_margin):
        return val_losses.index(best) + 1
    return None
