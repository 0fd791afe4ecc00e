"""The run's decisions, each a small named unit that reads the run's state and answers.

After each epoch the loop asks every stop policy in turn (NaN stop, early stopping) and the first `Stop`
ends the run; checkpoint retention says which numbered checkpoints an epoch writes and which go (the CPU
threads' policies are in engine.training.threads). None of them acts on
the run itself, so that every process of a distributed run can take the same decision from the same
state (a later process group reduces the answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from engine.settings.config import CheckpointSettings, Settings
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
class EarlyStopping:
    """`patience` epochs without an improvement of `monitor` end the run (0: never).

    The count is in the state, so it survives a resume.
    """

    patience: int
    monitor: str

    def after_epoch(self, state: RunState, epoch: EpochCompleted) -> Stop | None:
        if self.patience and state.bad_epochs >= self.patience:
            return Stop(
                "early_stopped",
                f"{self.monitor} did not improve for {self.patience} epochs "
                f"(best {state.best_value:.4f} at epoch {state.best_epoch})",
            )
        return None


def stop_policies(settings: Settings) -> list[StopPolicy]:
    """The stop policies of a run, in the order they are asked."""
    t = settings.training
    return [NanStop(t.stop_on_nan), EarlyStopping(t.patience, t.monitor)]


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
