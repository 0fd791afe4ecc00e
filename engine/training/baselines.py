"""What a model that learned nothing scores on a run's own data: the yardstick the diagnostic judges learning by.

The constant predictor gives every validation sample the training labels' priors: its validation loss is the
cross-entropy of the validation labels under those priors (ln(classes) for balanced classes), its accuracy the
validation share of the training majority class. A model that does not beat that loss learned nothing the
labels' frequencies do not already say, however its accuracy looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CHAPTER_LOSS = math.log(10)  # the chapter's thresholds were set for MNIST: ten balanced classes


@dataclass(frozen=True)
class Baseline:
    loss: float  # the constant predictor's validation loss
    accuracy: float | None  # its validation accuracy: the majority class's share (None: a regression)
    classes: int
    regression: bool = False  # the mean predictor of a standardised target (engine.training.regression)

    @property
    def scale(self) -> float:
        """The chapter's loss thresholds were set for ten classes: ln(classes) / ln(10) scales them to this data.

        By the number of classes, not the priors' entropy: a hard imbalanced problem has a small constant loss,
        and a model as good as logistic regression on it must not look as if it underfitted.
        """
        if self.regression:  # the standardised target's mean predictor scores about 1: the thresholds as written
            return 1.0
        return math.log(max(self.classes, 2)) / CHAPTER_LOSS

    @property
    def fresh_loss(self) -> float:
        """The loss above which a run has blown up: the constant predictor's, or a fresh model's where higher.

        A fresh model guesses about uniformly (loss ln(classes)), far above the constant predictor's loss on
        imbalanced labels: that is where training starts, not a blow-up.
        """
        if self.regression:  # a fresh model's output is near 0, the mean predictor's own
            return self.loss
        return max(self.loss, math.log(max(self.classes, 2)))

    def describe(self) -> str:
        if self.regression:
            return f"mean predictor (training mean): val loss {self.loss:.4f} (standardised target), R² 0"
        return f"constant predictor (class priors): val loss {self.loss:.4f}, accuracy {self.accuracy:.1%}"


def constant_baseline(counts: Any) -> Baseline | None:
    """From the splits' label counts (engine.data.loaders.LabelCounts); None when they are unknown or empty."""
    if counts is None or not sum(counts.train) or not sum(counts.val):
        return None
    k = len(counts.train)
    # a class the training split never shows gets half a sample: a finite loss, as a fitted model's would be
    weights = [max(c, 0.5) for c in counts.train]
    total, seen = sum(weights), sum(counts.val)
    loss = -sum(v * math.log(w / total) for v, w in zip(counts.val, weights) if v) / seen
    majority = max(range(k), key=lambda i: counts.train[i])
    return Baseline(loss, counts.val[majority] / seen, k)
