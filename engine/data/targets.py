"""The label column's cells as the training target: class indices, or numbers for regression.

`model.task = "auto"` reads a label as a regression target when every cell is a
finite number and either one of them is not a whole number, or there are more
than REGRESSION_DISTINCT_MIN distinct values making up more than
REGRESSION_DISTINCT_SHARE of the rows (a 442-row target with 214 distinct
values; not digits 0-9, nor 100 classes over 50,000 rows). Anything else is
classification, with class names sorted as before: whole numbers by value,
then text. A classification label with more than CLASSES_SINGLETON_MIN
classes, most of them seen in one or two rows, cannot be learned as classes and
is refused in one line naming `model.task`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from engine.settings.config import SettingsError

TASKS = ("auto", "classification", "regression")
REGRESSION_DISTINCT_MIN = 20
REGRESSION_DISTINCT_SHARE = 0.05
CLASSES_SINGLETON_MIN = 50  # more classes than this, most in one or two rows: refused as classification
RARE_ROWS = 2  # a class in this few rows cannot be in both the training and the validation split and be learned


class TargetError(SettingsError):
    """The label column cannot be the target the task asks for."""


@dataclass(frozen=True)
class Target:
    task: str  # "classification" or "regression"
    y: torch.Tensor  # int64 class indices, or float32 values in the file's units
    class_names: list[str] | None  # None for regression
    note: str | None  # one line for the data notes when the choice is worth telling


def label_key(v: str):
    """Whole numbers by value first, then other labels by text (the order class indices have always had)."""
    number = v.lstrip("-").isascii() and v.lstrip("-").isdigit()  # "²".isdigit(), and int() refuses it
    return (not number, int(v) if number else 0, v)


def _number(cell: str, decimal_comma: bool) -> float | None:
    """The cell as a finite number, or None."""
    text = cell.strip()
    if decimal_comma and "," in text:
        text = text.replace(".", "").replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers(cells: Sequence[str], decimal_comma: bool) -> list[float] | None:
    """Every cell as a number, or None when one is not."""
    values = []
    for cell in cells:
        value = _number(cell, decimal_comma)
        if value is None:
            return None
        values.append(value)
    return values


def looks_continuous(values: Sequence[float]) -> bool:
    """The auto rule: a non-whole value, or many distinct values for the number of rows."""
    if any(v != int(v) for v in values):
        return True
    distinct = len(set(values))
    return distinct > REGRESSION_DISTINCT_MIN and distinct > REGRESSION_DISTINCT_SHARE * len(values)


def make_target(cells: Sequence[str], task: str = "auto", label: str = "label", decimal_comma: bool = False) -> Target:
    """The target of the label column's (present, stripped) `cells`; `label` names the column in messages."""
    if task not in TASKS:
        raise TargetError(f"model.task = {task!r}: expected one of {', '.join(TASKS)}")
    values = _numbers(cells, decimal_comma) if task != "classification" else None
    if task == "regression":
        if values is None:
            bad = next(c for c in cells if _number(c, decimal_comma) is None)
            raise TargetError(
                f"model.task = 'regression': the label column '{label}' holds {bad.strip()[:40]!r}, "
                "not a finite number"
            )
        return _regression(values, label, None)
    if task == "auto" and values is not None and looks_continuous(values):
        distinct = len(set(values))
        note = (
            f"label '{label}' read as a regression target ({distinct} distinct numbers in {len(values)} rows; "
            "set model.task = 'classification' to train classes)"
        )
        return _regression(values, label, note)
    return _classification([c.strip() for c in cells], label, decimal_comma)


def _regression(values: list[float], label: str, note: str | None) -> Target:
    if len(values) < 2 or len(set(values)) < 2:
        raise TargetError(f"the label column '{label}' has a single value: nothing to regress")
    return Target("regression", torch.tensor(values, dtype=torch.float32), None, note)


def _classification(cells: list[str], label: str, decimal_comma: bool) -> Target:
    counts: dict[str, int] = {}
    for c in cells:
        counts[c] = counts.get(c, 0) + 1
    names = sorted(counts, key=label_key)
    if len(names) < 2:
        raise TargetError(f"the label column '{label}' has a single class")
    rare = sum(1 for n in counts.values() if n <= RARE_ROWS)
    if len(names) > CLASSES_SINGLETON_MIN and rare * 2 > len(names):
        numeric = _numbers(cells, decimal_comma) is not None
        hint = "set model.task = 'regression'" if numeric else "choose another data.label_column"
        raise TargetError(
            f"the label column '{label}' has {len(names)} classes, {rare} of them in one or two rows: "
            f"not learnable as classes (model.task = 'classification' or 'auto'); {hint}"
        )
    index = {name: k for k, name in enumerate(names)}
    return Target("classification", torch.tensor([index[c] for c in cells], dtype=torch.long), names, None)


def regression_stats(y: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation (never 0) the target is standardised with: the training split's."""
    y = y.double()
    mean = float(y.mean())
    std = float(y.std(unbiased=False)) if len(y) > 1 else 0.0
    return mean, (std if std > 0 else 1.0)
