"""The per-epoch diagnostic of chapter 8.3 and the overfitting onset of 8.1, with guards for real data.

The chapter checks NaN last, so a NaN loss (for which every comparison is
False) could never be reported after an overfitting test; here NaN and
infinities come first. Then, in order:

- OVERFITTING, the chapter's gaps, judged only from epoch `overfit_after` on (a
  fresh model's first epochs swing) and on at least `min_val_samples`
  validation samples (36 samples cannot tell a 10-point gap from noise);
- NOT LEARNING, from epoch `chance_after` on: the training loss still near the
  chance loss (the entropy of the training labels: ln(classes) when they are
  balanced), or, with enough validation samples, the validation accuracy near
  the share of the majority class: a model that predicts one class, or noise;
- UNDERFITTING, the chapter's rule (train loss above 1.0 after epoch 20).

Each badge's message states its rule and the numbers behind it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from engine.settings.config import DiagnosticsSettings
from engine.events import Diagnostic

if TYPE_CHECKING:
    from engine.data.loaders import LabelCounts


def chance_levels(counts: LabelCounts | None) -> tuple[float, float] | None:
    """(chance loss, majority share): what a model that learned nothing scores on these splits, or None if unknown."""
    if counts is None or not sum(counts.train) or not sum(counts.val):
        return None
    n = sum(counts.train)
    entropy = -sum(c / n * math.log(c / n) for c in counts.train if c)
    majority = max(range(len(counts.train)), key=lambda k: counts.train[k])  # what a constant model would predict
    return entropy, counts.val[majority] / sum(counts.val)


def diagnose(
    epoch: int,
    train_loss: float,
    val_loss: float,
    train_acc: float,
    val_acc: float,
    rules: DiagnosticsSettings | None = None,
    counts: LabelCounts | None = None,
) -> Diagnostic:
    """`epoch` counts from 1, as printed; `counts`: the splits' labels per class (NOT LEARNING needs them)."""
    rules = rules or DiagnosticsSettings()
    bad = {name: v for name, v in (("train_loss", train_loss), ("val_loss", val_loss)) if not math.isfinite(v)}
    if bad:
        names = " and ".join(f"{k} is {v}" for k, v in bad.items())
        return Diagnostic("nan", f"{names} at epoch {epoch}", {"train_loss": train_loss, "val_loss": val_loss})
    loss_gap = val_loss - train_loss
    acc_gap = train_acc - val_acc
    evidence = {"loss_gap": loss_gap, "acc_gap": acc_gap, "train_loss": train_loss, "val_loss": val_loss}
    val_samples = sum(counts.val) if counts is not None else None
    enough_val = val_samples is None or val_samples >= rules.min_val_samples
    if epoch >= rules.overfit_after and enough_val:
        overfitting = _overfitting(loss_gap, acc_gap, rules, evidence)
        if overfitting is not None:
            return overfitting
    levels = chance_levels(counts)
    if levels is not None and rules.chance_after and epoch >= rules.chance_after:
        not_learning = _not_learning(train_loss, val_acc, levels, enough_val, rules, epoch)
        if not_learning is not None:
            return not_learning
    if train_loss > rules.underfit_loss and epoch > rules.underfit_after:
        return Diagnostic(
            "underfitting",
            f"train loss {train_loss:.4f} > {rules.underfit_loss} after {rules.underfit_after} epochs",
            {"train_loss": train_loss, "epoch": float(epoch)},
        )
    message = f"loss gap {loss_gap:+.4f}, accuracy gap {acc_gap:+.1%}"
    if not enough_val:
        message += f"; {val_samples} validation samples < {rules.min_val_samples}: overfitting not judged"
        evidence["val_samples"] = float(val_samples)
    elif epoch < rules.overfit_after:
        message += f"; overfitting judged from epoch {rules.overfit_after}"
    return Diagnostic("ok", message, evidence)


def _overfitting(loss_gap: float, acc_gap: float, rules: DiagnosticsSettings, evidence: dict) -> Diagnostic | None:
    reasons = []
    if loss_gap > rules.overfit_loss_gap:
        reasons.append(f"val-train loss gap {loss_gap:+.4f} > {rules.overfit_loss_gap}")
    if acc_gap > rules.overfit_acc_gap:
        reasons.append(f"train-val accuracy gap {acc_gap:+.1%} > {rules.overfit_acc_gap:.0%}")
    return Diagnostic("overfitting", "; ".join(reasons), evidence) if reasons else None


def _not_learning(
    train_loss: float,
    val_acc: float,
    levels: tuple[float, float],
    enough_val: bool,
    rules: DiagnosticsSettings,
    epoch: int,
) -> Diagnostic | None:
    chance_loss, majority = levels
    margin = rules.chance_margin
    loss_floor = (1 - margin) * chance_loss
    acc_floor = majority + margin * (1 - majority)
    evidence = {
        "train_loss": train_loss,
        "chance_loss": chance_loss,
        "val_acc": val_acc,
        "majority_share": majority,
        "epoch": float(epoch),
    }
    if chance_loss > 0 and train_loss > loss_floor:
        return Diagnostic(
            "not_learning",
            f"train loss {train_loss:.4f} > {loss_floor:.4f} = {1 - margin:.2f} x chance loss {chance_loss:.4f} "
            f"(the labels' entropy) at epoch {epoch}",
            evidence,
        )
    if enough_val and val_acc < acc_floor:
        return Diagnostic(
            "not_learning",
            f"val accuracy {val_acc:.1%} < {acc_floor:.1%} (majority class {majority:.1%} + {margin:.0%} of the rest) "
            f"at epoch {epoch}",
            evidence,
        )
    return None


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
