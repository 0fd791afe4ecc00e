"""The run's decisions, each a small named unit that reads the run's state and answers.

After each epoch the loop asks every stop policy in turn (NaN stop, early stopping) and the first `Stop`
ends the run; checkpoint retention says which numbered checkpoints an epoch writes and which go (the CPU
threads' policies are in engine.training.threads). None of them acts on
the run itself, so that every process of a distributed run can take the same decision from the same
state (a later process group reduces the answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from engine.settings.config import CheckpointSettings, Settings, TrainingSettings
from engine.events import EpochCompleted
from engine.training.snapshot import RunState


@dataclass(frozen=True)
class Stop:
    status: str  # RunFinished.status: "nan" or "early_stopped"
    reason: str


class StopPolicy(Protocol):
    def after_epoch(self, state: RunState, epoch: EpochCompleted) -> Stop | None: ...


@dataclass(frozen=True)
class NanStop:
    """Chapter 8.3 (fixed): a NaN or infinite loss ends the run, checked before every other diagnostic."""

    enabled: bool = True

    def after_epoch(self, state: RunState, epoch: EpochCompleted) -> Stop | None:
        if self.enabled and epoch.diagnostic.status == "nan":
            return Stop("nan", epoch.diagnostic.message)
        return None


@dataclass(frozen=True)
class Improvement:
    """When `monitor` improved: the one rule that picks best.pth and counts epochs for early stopping.

    An epoch improves on the best when its value is better by more than `min_delta` (lower for a loss,
    higher for an accuracy); a non-finite value never does. `patience` epochs in a row without an
    improvement end the run (0: never).
    """

    monitor: str
    mode: str  # "min" or "max"
    min_delta: float = 0.0
    patience: int = 0

    @classmethod
    def from_settings(cls, t: TrainingSettings) -> Improvement:
        mode = "min" if t.monitor.endswith("loss") else "max"
        return cls(t.monitor, mode, t.min_delta, t.patience)

    def improves(self, value: float, best: float | None) -> bool:
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta

    def record(self, state: RunState, value: float, finite: bool) -> bool:
        """The epoch just ended (state.epoch): whether it is the new best; the state keeps the count."""
        if finite and self.improves(value, state.best_value):
            state.best_epoch, state.best_value, state.bad_epochs = state.epoch, value, 0
            return True
        state.bad_epochs += 1
        return False


@dataclass(frozen=True)
class EarlyStopping:
    """`patience` epochs without an improvement end the run. The count is in the state: it survives a resume."""

    improvement: Improvement

    def after_epoch(self, state: RunState, epoch: EpochCompleted) -> Stop | None:
        patience = self.improvement.patience
        if patience and state.bad_epochs >= patience:
            return Stop(
                "early_stopped",
                f"{self.improvement.monitor} did not improve for {patience} epochs "
                f"(best {state.best_value:.4f} at epoch {state.best_epoch})",
            )
        return None


def stop_policies(settings: Settings) -> list[StopPolicy]:
    """The stop policies of a run, in the order they are asked."""
    t = settings.training
    return [NanStop(t.stop_on_nan), EarlyStopping(Improvement.from_settings(t))]


@dataclass(frozen=True)
class CheckpointRetention:
    """`every` N epochs an `epoch_N.pth` is kept, the newest `keep` of them (0: none)."""

    every: int
    keep: int

    @classmethod
    def from_settings(cls, settings: CheckpointSettings) -> CheckpointRetention:
        return cls(settings.every, settings.keep)

    def keeps(self, epoch: int) -> bool:
        return bool(self.every) and epoch % self.every == 0

    def to_remove(self, kept_epochs: Sequence[int]) -> list[int]:
        """Of the numbered checkpoints on disk (the new one written already), those that go."""
        ordered = sorted(kept_epochs)
        return ordered[: -self.keep] if len(ordered) > self.keep else []
