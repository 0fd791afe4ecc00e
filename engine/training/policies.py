"""The run's decisions, each a small named unit that reads the run's state and answers.

After each epoch the loop asks every stop policy in turn (NaN stop, early stopping) and the first `Stop`
ends the run; checkpoint retention says which numbered checkpoints an epoch writes and which go; the thread
follower answers, at the progress ticks, how many CPU threads the run should use. None of them acts on
the run itself, so that every process of a distributed run can take the same decision from the same
state (a later process group reduces the answers).
"""

from __future__ import annotations

import statistics
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


class ThreadTrial:
    """The first steps of a CPU run timed on one thread and on the free cores, in alternating blocks.

    `record(seconds)` takes each step's time and answers the thread count for the next step when it changes.
    After a warm-up, blocks of BLOCK steps alternate between the counts (a block's first step, which wakes
    or parks the pool, is not counted), so that a machine getting busier or quieter meanwhile weighs on both
    alike; the count with the lower median step time wins, one thread unless more are clearly faster.
    """

    WARMUP, BLOCK, ROUNDS = 3, 6, 3
    MARGIN = 0.97  # more threads must be 3 % faster: they lose most when another process takes a core

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = tuple(choices)
        self.times: dict[int, list[float]] = {c: [] for c in self.choices}
        self.steps = 0
        self.chosen: int | None = None

    @property
    def current(self) -> int:
        block = max(0, self.steps - self.WARMUP) // self.BLOCK
        return self.choices[block % len(self.choices)]

    def record(self, seconds: float) -> int | None:
        before = self.current
        if self.steps >= self.WARMUP and (self.steps - self.WARMUP) % self.BLOCK:
            self.times[before].append(seconds)
        self.steps += 1
        if self.steps >= self.WARMUP + self.BLOCK * len(self.choices) * self.ROUNDS:
            self.chosen = self._fastest()
            return self.chosen if self.chosen != before else None
        return self.current if self.current != before else None

    def _fastest(self) -> int:
        medians = {c: statistics.median(t) for c, t in self.times.items()}
        fewest = min(self.choices)
        best = min(medians, key=medians.get)
        return best if medians[best] < medians[fewest] * self.MARGIN else fewest

    def describe(self) -> str:
        return ", ".join(
            f"{c} thread{'s' * (c != 1)} {1e3 * statistics.median(t):.2f} ms" for c, t in self.times.items()
        )


class ThreadFollower:
    """A CPU run on several threads follows the cores other processes leave free (engine.device.CoreWatch)."""

    def __init__(self, watch) -> None:
        self.watch = watch

    def threads(self, current: int) -> int | None:
        """The thread count to switch to now, or None to stay."""
        threads = self.watch.poll()
        return threads if threads is not None and threads != current else None

    @property
    def busy_elsewhere(self) -> float:
        return round(self.watch.last_elsewhere, 2)
