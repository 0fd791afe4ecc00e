"""The per-epoch diagnostic of chapter 8.3 and the overfitting onset of 8.1, judged against the run's own data.

`diagnostics.rules = "chapter"` gives exactly the chapter's rules, NaN checked first (the chapter checks it
last, where a NaN loss, for which every comparison is False, could never be reported). The default,
`"baseline"`, reads the same badges against the constant predictor (engine.training.baselines), in order:

- NaN: a loss that is NaN or infinite;
- DIVERGING: the training loss far above what a model that learned nothing scores (the constant predictor's
  loss, or a fresh model's ln(classes) where higher: imbalanced labels), the validation loss jumping there in
  one epoch, or the training loss rising epoch after epoch (by `RISE_FLOOR` of the constant's loss in all): at
  once, before any NaN. A run that blew up stays DIVERGING while it has not learned since (a network that blew
  up often dies, its loss back at the constant's) and for `UNSTABLE_EPOCHS` after its last blow-up; a run
  whose train or val loss more than doubled in one epoch swings, DIVERGING for `JUMP_EPOCHS`;
- NOT LEARNING: from epoch `chance_after`, the best validation loss not clearly below the constant's ("at
  chance" when the accuracy is the majority class's too), unless it is still falling by a clear step. A model
  that beats that loss is learning, however modest its accuracy on a hard or imbalanced problem;
- OVERFITTING: the chapter's gaps, its loss gap scaled by ln(classes) / ln(10) (0.5 is much for two classes
  and little for a thousand), or the onset rule: the validation loss risen from its best while the
  training loss kept falling, by `ONSET_TRAIN_FALL` of its value then (a healthy run's val loss wobbles above
  its best while its train loss has levelled off);
- UNDERFITTING: the chapter's rule, its 1.0 scaled likewise.

The defaults and the rules were tuned on the labelled corpus of benchmarks/diagnostics.py; BENCHMARKS.md has
its precision and recall per badge, beside the chapter's rules.

Each badge's message states its rule and the numbers behind it; the evidence holds the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from engine.events import Diagnostic
from engine.settings.config import DiagnosticsSettings
from engine.training.baselines import Baseline


# both measured on the labelled corpus of benchmarks/diagnostics.py (BENCHMARKS.md)
FALLING_STEP = 0.01  # a val loss falling by this share of the constant predictor's loss in an epoch is learning
UNSTABLE_EPOCHS = 5  # a run that blew up this few epochs ago is still DIVERGING, however its last epoch looks
ONSET_FLOOR = 0.0075  # the onset rule's rise must exceed this share of the constant predictor's loss
ONSET_TRAIN_FALL = 0.1  # ... while the train loss fell by this share of its value at the best val loss's epoch
RISE_FLOOR = 0.05  # a train loss rising epochs in a row must rise by this share of the constant predictor's loss
JUMP_FACTOR, JUMP_EPOCHS = 2.0, 7  # a loss that more than doubled in one epoch, up to 7 epochs ago, swings
JUMP_FLOOR = 0.1  # ... by at least this share of the constant predictor's loss


@dataclass(frozen=True)
class EpochScores:
    """One epoch's numbers and the run's curves before it (from epoch 1)."""

    epoch: int
    train_loss: float
    val_loss: float
    train_acc: float | None  # None for a regression
    val_acc: float | None
    past_train_loss: Sequence[float] = field(default_factory=tuple)
    past_val_loss: Sequence[float] = field(default_factory=tuple)
    val_samples: int | None = None

    @property
    def loss_gap(self) -> float:
        return self.val_loss - self.train_loss

    @property
    def acc_gap(self) -> float:
        return 0.0 if self.train_acc is None or self.val_acc is None else self.train_acc - self.val_acc

    def gaps(self) -> dict[str, float]:
        acc = {} if self.val_acc is None else {"acc_gap": self.acc_gap}  # a regression has no accuracy
        return {"loss_gap": self.loss_gap, **acc, "train_loss": self.train_loss, "val_loss": self.val_loss}


def diagnose(e: EpochScores, rules: DiagnosticsSettings | None = None, baseline: Baseline | None = None) -> Diagnostic:
    rules = rules or DiagnosticsSettings()
    bad = {name: v for name, v in (("train_loss", e.train_loss), ("val_loss", e.val_loss)) if not math.isfinite(v)}
    if bad:
        names = " and ".join(f"{k} is {v}" for k, v in bad.items())
        return Diagnostic("nan", f"{names} at epoch {e.epoch}", {"train_loss": e.train_loss, "val_loss": e.val_loss})
    if rules.rules == "chapter":
        return chapter_diagnostic(e)
    for rule in (_diverging, _not_learning, _overfitting, _underfitting):
        found = rule(e, rules, baseline)
        if found is not None:
            return found
    return _ok(e, rules)


def chapter_diagnostic(e: EpochScores) -> Diagnostic:
    """§8.3 as written (its `epoch` counts from 0), after the NaN check."""
    if e.loss_gap > 0.5 or e.acc_gap > 0.1:
        return Diagnostic("overfitting", f"Écart {e.loss_gap:+.4f} > 0.5 or {e.acc_gap:+.1%} > 10 %", e.gaps())
    if e.train_loss > 1.0 and e.epoch - 1 > 20:
        return Diagnostic("underfitting", f"train loss {e.train_loss:.4f} > 1.0 after epoch 20", e.gaps())
    return Diagnostic("ok", f"Écart {e.loss_gap:+.4f}", e.gaps())


def _diverging(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> Diagnostic | None:
    factor = rules.diverge_factor
    evidence = {"train_loss": e.train_loss, "factor": factor}
    blown = _blown_up(e, factor, baseline)
    if blown is not None:
        return blown
    first = e.past_train_loss[0] if e.past_train_loss else None
    if baseline is None and first is not None and math.isfinite(first) and e.train_loss > factor * first:
        evidence["first_train_loss"] = first
        return Diagnostic("diverging", f"train loss {e.train_loss:.4g} > {factor:g} x epoch 1's {first:.4f}",
                          evidence)
    n = rules.diverge_epochs
    recent = [*e.past_train_loss[-n:], e.train_loss]
    floor = RISE_FLOOR * baseline.loss if baseline is not None else 0.0
    if n and len(recent) == n + 1 and all(b > a * 1.01 for a, b in zip(recent, recent[1:])) \
            and recent[-1] - recent[0] > floor:
        evidence["rising_epochs"] = float(n)
        return Diagnostic("diverging", f"train loss rose {n} epochs in a row: "
                          + " -> ".join(f"{v:.4f}" for v in recent), evidence)
    return _not_recovered(e, rules, baseline) or _jumped(e, baseline)


def _blown_up(e: EpochScores, factor: float, baseline: Baseline | None) -> Diagnostic | None:
    """A loss far above what predicting the class priors, or a fresh model's guess, would give.

    The val loss counts when it jumped there at once (by the same factor in one epoch): weights that blew up at
    the end of an epoch whose average train loss still looks sane. A val loss that climbed there slowly is a
    model learning its training set by heart, long after it stopped learning anything else.
    """
    if baseline is None:
        return None
    bar = factor * baseline.fresh_loss
    before = e.past_val_loss[-1] if e.past_val_loss else None
    val_jumped = before is None or not e.val_loss <= factor * before
    for name, loss, judged in (("train", e.train_loss, True), ("val", e.val_loss, val_jumped)):
        if judged and loss > bar:
            evidence = {f"{name}_loss": loss, "factor": factor, "constant_loss": baseline.loss}
            return Diagnostic("diverging", f"{name} loss {loss:.4g} > {factor:g} x {_fresh(baseline)} at epoch "
                              f"{e.epoch}", evidence)
    return None


def _past_blow_ups(e: EpochScores, factor: float, fresh_loss: float) -> list[int]:
    """The earlier epochs (from 0) that `_blown_up` called so: train loss past the bar, or val loss jumped past it."""
    bar, val = factor * fresh_loss, list(e.past_val_loss)
    return [i for i, train in enumerate(e.past_train_loss) if not train <= bar
            or (i < len(val) and not val[i] <= bar and (i == 0 or not val[i] <= factor * val[i - 1]))]


def _fresh(baseline: Baseline) -> str:
    """How the blow-up bar reads: the constant predictor's loss, or a fresh model's where that is higher."""
    if baseline.fresh_loss > baseline.loss:
        return f"a fresh model's {baseline.fresh_loss:.4f} (ln {baseline.classes} classes)"
    return f"the constant predictor's {baseline.loss:.4f}"


def _not_recovered(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> Diagnostic | None:
    """A run that blew up, recently or without learning since: still DIVERGING, not NOT LEARNING or OK.

    A network that blew up often dies (its ReLUs dead, its loss back at the constant predictor's), or swings
    between blow-ups and good epochs: the cause to fix is the step that blew it up, the learning rate.
    """
    if baseline is None:
        return None
    blown = _past_blow_ups(e, rules.diverge_factor, baseline.fresh_loss)
    if not blown:
        return None
    best_since = min([v for v in e.past_val_loss[blown[0]:] if math.isfinite(v)] + [e.val_loss])
    learned = (1 - rules.chance_margin) * baseline.loss
    ago = e.epoch - (blown[-1] + 1)
    if best_since <= learned and ago > UNSTABLE_EPOCHS:
        return None
    at = blown[0] if best_since > learned else blown[-1]
    evidence = {"train_loss": e.train_loss, "blow_up_epoch": float(at + 1),
                "blow_up_train_loss": e.past_train_loss[at], "blow_up_val_loss": e.past_val_loss[at],
                "best_val_loss": best_since, "constant_loss": baseline.loss}
    how = (f"has not recovered: the best val loss since, {best_since:.4f}, is not below {learned:.4f} = "
           f"{1 - rules.chance_margin:.2f} x the constant predictor's") if best_since > learned else (
           f"{ago} epoch{'s' * (ago != 1)} ago: the run is unstable")
    return Diagnostic("diverging", f"the loss blew up at epoch {at + 1} (train {e.past_train_loss[at]:.4g}, val "
                      f"{e.past_val_loss[at]:.4g}; {rules.diverge_factor:g} x {_fresh(baseline)} allowed), {how}",
                      evidence)


def _jumped(e: EpochScores, baseline: Baseline | None) -> Diagnostic | None:
    """A loss that more than doubled in one epoch within the last `JUMP_EPOCHS`: SGD at too high a rate swings
    (AutoTrainer's "oscillating loss") below the blow-up bar, good epochs between bad ones, and NaN often follows.

    A jump must be material (`JUMP_FLOOR` of the constant predictor's loss): a loss near zero doubles on noise.
    """
    floor = JUMP_FLOOR * baseline.loss if baseline is not None else 0.0
    jumps = []
    for name, past, now in (("train", e.past_train_loss, e.train_loss), ("val", e.past_val_loss, e.val_loss)):
        window = [*past[max(0, len(past) - JUMP_EPOCHS):], now]  # 0: the rule is off
        start = e.epoch - len(window) + 1
        jumps += [(start + i + 1, name, a, b) for i, (a, b) in enumerate(zip(window, window[1:]))
                  if b > JUMP_FACTOR * a and b - a > floor]
    if not jumps:
        return None
    at, name, before, after = max(jumps)
    return Diagnostic("diverging", f"the {name} loss jumped {before:.4g} -> {after:.4g} at epoch {at}, more than "
                      f"{JUMP_FACTOR:g}x in one epoch, {e.epoch - at} epoch{'s' * (e.epoch - at != 1)} ago: the run "
                      f"swings (judged for {JUMP_EPOCHS} epochs)",
                      {"train_loss": e.train_loss, "val_loss": e.val_loss, "jump_epoch": float(at),
                       "jump_from": before, "jump_to": after, "factor": JUMP_FACTOR})


def _not_learning(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> Diagnostic | None:
    if baseline is None or not rules.chance_after or e.epoch < rules.chance_after:
        return None
    best = min([v for v in e.past_val_loss if math.isfinite(v)] + [e.val_loss])
    bar = (1 - rules.chance_margin) * baseline.loss
    if best <= bar or _still_falling(e, baseline):
        return None
    evidence = {"val_loss": e.val_loss, "best_val_loss": best, "constant_loss": baseline.loss}
    if e.val_acc is not None and baseline.accuracy is not None:  # a regression has no accuracy
        evidence.update(val_acc=e.val_acc, majority_acc=baseline.accuracy)
    at_chance = ("val_acc" in evidence and abs(e.val_acc - baseline.accuracy) <= 0.02
                 and abs(e.val_loss - baseline.loss) <= bar * 0.1)
    how = (f"at chance: accuracy {e.val_acc:.1%} is the majority class's {baseline.accuracy:.1%} and val loss "
           f"{e.val_loss:.4f} the constant predictor's {baseline.loss:.4f}") if at_chance else (
           f"best val loss {best:.4f} not below {bar:.4f} = {1 - rules.chance_margin:.2f} x the constant "
           f"predictor's {baseline.loss:.4f} ({'training mean' if baseline.regression else 'class priors'})")
    return Diagnostic("not_learning", f"{how}, after {e.epoch} epochs", evidence)


def _still_falling(e: EpochScores, baseline: Baseline) -> bool:
    """The val loss fell below its best by a clear step this epoch: a slow start (a small model on imbalanced
    labels begins far above the constant predictor's loss), not a model that cannot learn."""
    past = [v for v in e.past_val_loss if math.isfinite(v)]
    return bool(past) and e.val_loss < min(past) - FALLING_STEP * baseline.loss


def _overfitting(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> Diagnostic | None:
    if e.epoch < rules.overfit_after or (e.val_samples is not None and e.val_samples < rules.min_val_samples):
        return None
    scale = baseline.scale if baseline is not None else 1.0
    loss_bar = rules.overfit_loss_gap * scale
    evidence = {**e.gaps(), "loss_gap_bar": loss_bar}
    reasons = []
    if e.loss_gap > loss_bar:
        scaled = f" (the chapter's {rules.overfit_loss_gap:g} x {scale:.2f}: ln(classes) / ln(10))"
        reasons.append(f"val-train loss gap {e.loss_gap:+.4f} > {loss_bar:.4f}" + (scaled if scale != 1 else ""))
    if e.acc_gap > rules.overfit_acc_gap:
        reasons.append(f"train-val accuracy gap {e.acc_gap:+.1%} > {rules.overfit_acc_gap:.0%}")
    onset = _rising_since(e, rules, baseline)
    if onset is not None:
        evidence.update(onset_epoch=float(onset), best_val_loss=e.past_val_loss[onset - 1],
                        train_loss_then=e.past_train_loss[onset - 1])
        reasons.append(f"val loss {e.val_loss:.4f} up from its best {evidence['best_val_loss']:.4f} at epoch "
                       f"{onset} while train loss fell {evidence['train_loss_then']:.4f} -> {e.train_loss:.4f}")
    return Diagnostic("overfitting", "; ".join(reasons), evidence) if reasons else None


def _rising_since(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> int | None:
    """The onset rule: the epoch of the best val loss, when val loss rose past it as train loss kept falling.

    The rise must be material: `ONSET_FLOOR` of the constant predictor's loss (without one, the chapter's
    `onset_margin` of the best). The train loss must have fallen by `ONSET_TRAIN_FALL` of its value at the best
    epoch: a model still fitting its training set, where a healthy run near its end has levelled off and its
    val loss wobbles above its best on noise. On the labelled corpus (benchmarks/diagnostics.py) this finds more
    onsets in time than a 10 % rise did, for no more alarms on healthy runs.
    """
    past = list(e.past_val_loss)
    finite = [v for v in past if math.isfinite(v)]
    if not finite:
        return None
    best = min(finite)
    at = past.index(best)
    if at >= len(e.past_train_loss):
        return None
    rise = ONSET_FLOOR * baseline.loss if baseline is not None else rules.onset_margin * best
    if e.val_loss - best > rise and e.train_loss < (1 - ONSET_TRAIN_FALL) * e.past_train_loss[at]:
        return at + 1
    return None


def _underfitting(e: EpochScores, rules: DiagnosticsSettings, baseline: Baseline | None) -> Diagnostic | None:
    bar = rules.underfit_loss * (baseline.scale if baseline is not None else 1.0)
    if e.train_loss > bar and e.epoch > rules.underfit_after:
        chapter = f"the chapter's {rules.underfit_loss:g} x ln(classes) / ln(10)"
        return Diagnostic("underfitting", f"train loss {e.train_loss:.4f} > {bar:.4f} after "
                          f"{rules.underfit_after} epochs ({chapter})", {"train_loss": e.train_loss, "bar": bar})
    return None


def _ok(e: EpochScores, rules: DiagnosticsSettings) -> Diagnostic:
    message, evidence = f"loss gap {e.loss_gap:+.4f}", e.gaps()
    message += f", accuracy gap {e.acc_gap:+.1%}" if e.val_acc is not None else ""
    if e.val_samples is not None and e.val_samples < rules.min_val_samples:
        message += f"; {e.val_samples} validation samples < {rules.min_val_samples}: overfitting not judged"
        evidence["val_samples"] = float(e.val_samples)
    elif e.epoch < rules.overfit_after:
        message += f"; overfitting judged from epoch {rules.overfit_after}"
    return Diagnostic("ok", message, evidence)


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
