"""The per-epoch metrics of one run, as columns for the charts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunHistory:
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_r2: list[float] = field(default_factory=list)  # a regression's, in place of the accuracies
    val_r2: list[float] = field(default_factory=list)

    def add(self, row: dict) -> None:
        """A metrics.jsonl record (or EpochCompleted.metrics())."""
        self.epochs.append(int(row["epoch"]))
        for name in ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "train_r2", "val_r2"):
            value = row.get(name)
            getattr(self, name).append(float("nan") if value is None else float(value))

    @property
    def regression(self) -> bool:
        return any(v == v for v in self.val_r2)  # a NaN is not equal to itself

    def second_chart(self) -> tuple[str, dict[str, list[float]]]:
        """The chart beside the loss: accuracy, or a regression's R² (the accuracies it has not)."""
        if self.regression:
            return "R²", {"train": self.train_r2, "val": self.val_r2}
        return "accuracy", {"train": self.train_acc, "val": self.val_acc}

    @classmethod
    def from_rows(cls, rows) -> RunHistory:
        history = cls()
        for row in rows:
            history.add(row)
        return history
