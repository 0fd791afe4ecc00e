"""The events a run emits, in the order they happen.

Each event is a small frozen dataclass delivered to the run's listeners (engine.listeners).
`to_dict()` gives a JSON-ready dict with a `type` key and `event_from_dict`
reads it back, so the same events feed the console, the headless CLI and the
run's append-only `events.jsonl`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Diagnostic:
    """A badge and the numbers behind it."""

    status: str  # "ok", "overfitting", "underfitting", "not_learning" or "nan"
    message: str
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The badge's text; a status this version does not know (from a newer run's files) is shown as written."""
        known = {
            "ok": "OK",
            "overfitting": "OVERFITTING",
            "underfitting": "UNDERFITTING",
            "not_learning": "NOT LEARNING",
            "nan": "NaN",
        }
        return known.get(self.status, self.status.replace("_", " ").upper())


@dataclass(frozen=True)
class Event:
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"type": type(self).__name__, **data}


@dataclass(frozen=True)
class RunStarted(Event):
    run_dir: str
    settings: dict[str, Any]
    device: str
    device_name: str
    parameters: int
    train_samples: int
    val_samples: int
    batches_per_epoch: int
    data_path: str  # how batches are made: "in-memory tensors on cpu", "DataLoader (2 workers)", ...
    precision: str
    start_epoch: int  # epochs already done (non-zero when resuming)
    epochs: int
    threads: int
    step: str = "autograd"  # how a batch's step runs: "autograd" or the fused MLP step (engine.training.accel)
    processes: int = 1  # the run's world size: torchrun's processes on all machines (engine.training.distributed)
    note: str = ""  # what the user should know about this start (a resume that restarts its epoch)
    # the constant predictor's validation loss and accuracy (engine.training.baselines), None where unknown
    baseline_loss: float | None = None
    baseline_acc: float | None = None
    model_reason: str = ""  # why model.name = auto chose this model (engine.settings.defaults); "": the settings say


@dataclass(frozen=True)
class BatchProgressed(Event):
    epoch: int
    batch: int
    batches: int
    samples_per_s: float
    eta_s: float  # this epoch's remaining training time
    loss: float  # running mean of the epoch's training loss
    # the whole run's remaining time: this epoch's and the epochs after it at the last epochs' pace (validation
    # included), or at this epoch's batch rate before one has ended; None in events of older versions
    run_eta_s: float | None = None
    run_eta_at_most: bool = False  # early stopping may end the run sooner: run_eta_s is its upper bound


@dataclass(frozen=True)
class ThreadsChanged(Event):
    """A CPU run's torch threads, resized to the cores other processes left free (engine.device.CoreWatch)."""

    epoch: int
    threads: int
    previous: int
    busy_elsewhere: float  # cores' worth of CPU other processes used in the last window
    reason: str = ""  # why, when other processes were not it: the first steps' timing (ThreadTrial)


# The record of one epoch: a line of metrics.jsonl, a row of the console's table, a point of its charts, a
# value of the checkpoint's history. Every one of them reads these names, in this order.
EPOCH_RECORD_FIELDS = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "lr",
    "seconds",
    "samples_per_s",
    "diagnostic",
    "is_best",
    "time",
)
# A regression's epoch adds these (original units; its train_acc and val_acc are null); a classification's has none
REGRESSION_FIELDS = ("train_mae", "val_mae", "train_rmse", "val_rmse", "train_r2", "val_r2")


def record_fields(row: dict[str, Any]) -> tuple[str, ...]:
    """The schema of an epoch's record: a regression's when it holds any of REGRESSION_FIELDS."""
    regression = any(row.get(k) is not None for k in REGRESSION_FIELDS)
    return EPOCH_RECORD_FIELDS + REGRESSION_FIELDS if regression else EPOCH_RECORD_FIELDS


@dataclass(frozen=True)
class EpochCompleted(Event):
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    train_acc: float | None  # None for a regression
    val_acc: float | None
    lr: float
    seconds: float
    samples_per_s: float
    diagnostic: Diagnostic
    is_best: bool
    onset_epoch: int | None  # chapter 8.1: the epoch where overfitting began, if it did
    train_mae: float | None = None  # a regression's, in the target's units
    val_mae: float | None = None
    train_rmse: float | None = None
    val_rmse: float | None = None
    train_r2: float | None = None
    val_r2: float | None = None

    @property
    def regression(self) -> bool:
        return self.val_mae is not None or self.train_mae is not None

    def metrics(self) -> dict[str, Any]:
        """The record of this epoch (EPOCH_RECORD_FIELDS, and a regression's REGRESSION_FIELDS): its line."""
        fields = EPOCH_RECORD_FIELDS + REGRESSION_FIELDS if self.regression else EPOCH_RECORD_FIELDS
        row = {name: getattr(self, name, None) for name in fields}
        return recorded({**row, "diagnostic": self.diagnostic.status})


# The precision an epoch's record is written with, fresh or resumed: timings are measured, not computed, and
# their last digits are noise. The losses, accuracies and learning rate keep every digit (they are results).
RECORD_DIGITS = {"seconds": 4, "samples_per_s": 1}


def recorded(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch's record as metrics.jsonl holds it: its timings rounded to RECORD_DIGITS (a None stays None)."""
    rounded = {k: round(row[k], n) for k, n in RECORD_DIGITS.items() if isinstance(row.get(k), (int, float))}
    return {**row, **rounded}


@dataclass(frozen=True)
class CheckpointSaved(Event):
    epoch: int
    path: str
    kind: str  # "best", "last" or "epoch"
    monitor: str
    value: float


@dataclass(frozen=True)
class RunPaused(Event):
    epoch: int
    batch: int


@dataclass(frozen=True)
class RunResumed(Event):
    epoch: int
    batch: int


@dataclass(frozen=True)
class RunFinished(Event):
    status: str  # "completed", "early_stopped", "stopped" or "nan"
    reason: str
    epochs_completed: int
    best_epoch: int | None
    best_value: float | None
    monitor: str
    run_dir: str
    seconds: float


@dataclass(frozen=True)
class RunFailed(Event):
    error: str
    error_type: str
    traceback: str
    run_dir: str | None
    epoch: int


@dataclass(frozen=True)
class CommandReceived(Event):
    """A command from another process (`trainconsole stop|pause|resume`, an attached console), acknowledged."""

    command: str  # "stop", "pause" or "resume"
    id: str  # the sender's, who waits for this event
    detail: str  # what the run does about it
    sender_pid: int
    changed: bool = True  # False: the run already was as asked (paused when told to pause); older records lack it


@dataclass(frozen=True)
class ListenerFailed(Event):
    """A listener raised (a log writer on a full disk, ...): it hears no more of the run, which goes on."""

    listener: str
    error: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        BatchProgressed,
        ThreadsChanged,
        EpochCompleted,
        CheckpointSaved,
        RunPaused,
        RunResumed,
        RunFinished,
        RunFailed,
        CommandReceived,
        ListenerFailed,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event written by `to_dict()` (e.g. a line of events.jsonl)."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    if "diagnostic" in data and isinstance(data["diagnostic"], dict):
        data["diagnostic"] = Diagnostic(**data["diagnostic"])
    return cls(**data)
