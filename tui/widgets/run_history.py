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

    def add(self, row: dict) -> None:
        """A metrics.jsonl record (or EpochCompleted.metrics())."""
        self.epochs.append(int(row["epoch"]))
        for name in ("train_loss", "val_loss", "train_acc", "val_acc", "lr"):
            value = row.get(name)
            getattr(self, name).append(float("nan") if value is None else float(value))

    @classmethod
    def from_rows(cls, rows) -> RunHistory:
        history = cls()
        for row in rows:
            history.add(row)
        return history
