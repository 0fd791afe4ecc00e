"""The events that open a run and close each epoch, and chapter 8's bookkeeping of an epoch."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

from engine.device import device_name
from engine.events import EpochCompleted, RunStarted
from engine.models.networks import count_parameters
from engine.training.diagnostics import EpochScores, diagnose, overfitting_onset
from engine.training.loop import Scores
from engine.training.probing import with_probes
from engine.training.saving import weights_finite


def run_started(t: Any) -> RunStarted:  # t: the engine.training.trainer.Trainer
    s, data = t.settings, t.data
    return RunStarted(str(t.run_dir), s.to_dict(), str(t.device), device_name(t.device),
                      count_parameters(t.model), data.train.num_samples, data.val.num_samples, len(data.train),
                      data.description, t.precision, t.state.epoch, s.training.epochs, t.threads,
                      t.step.description, t.group.world_size, t.note,
                      t.baseline.loss if t.baseline else None, t.baseline.accuracy if t.baseline else None,
                      model_reason=t.model_reason)


def end_epoch(t: Any, train: Scores, val: Scores, samples_per_s: float, seconds: float) -> EpochCompleted:
    """Chapter 8's bookkeeping of an epoch: diagnostic, best model, scheduler, checkpoints. Its event, emitted."""
    st, s = t.state, t.settings
    train_loss, train_acc, val_loss, val_acc = train.loss, train.accuracy, val.loss, val.accuracy
    st.epoch += 1
    finished = time.time()  # wall-clock, kept in the history so that a resume can rewrite metrics.jsonl whole
    scores = EpochScores(st.epoch, train_loss, val_loss, train_acc, val_acc, tuple(st.history["train_loss"]),
                         tuple(st.history["val_loss"]), t.data.val.num_samples)
    diagnostic = diagnose(scores, s.diagnostics, t.baseline)
    if t.probes is not None:
        diagnostic = with_probes(diagnostic, t.probes.diagnose(st.epoch))
    values = {"train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc, "val_acc": val_acc,
              **regression_values(train, val)}
    finite = math.isfinite(train_loss) and math.isfinite(val_loss) and weights_finite(t.model)
    if not finite:  # a NaN epoch never becomes best, and writes no checkpoint
        reason = diagnostic.message if diagnostic.status == "nan" else f"non-finite weights at epoch {st.epoch}"
        diagnostic = replace(diagnostic, status="nan", message=f"{reason}; {t.saver.kept_note()}")
    monitored = values[s.training.monitor]
    is_best = t.improvement.record(st, monitored, finite)
    lr = t.optimizer.param_groups[0]["lr"]
    extra = {"lr": lr, "seconds": seconds, "samples_per_s": samples_per_s, "diagnostic": diagnostic.status,
             "is_best": is_best, "time": finished}
    for k, v in {**values, **extra}.items():
        st.history[k].append(v)
    step_scheduler(t.scheduler, s.training.scheduler, monitored)
    if finite:
        t.saver.after_epoch(is_best)
    onset = overfitting_onset(st.history["val_loss"], s.diagnostics)
    event = EpochCompleted(st.epoch, s.training.epochs, train_loss, val_loss, train_acc, val_acc, lr, seconds,
                           samples_per_s, diagnostic, is_best, onset, **regression_values(train, val), time=finished)
    t.emit(event)
    return event


def regression_values(train: Scores, val: Scores) -> dict[str, float | None]:
    """The epoch's REGRESSION_FIELDS (None for classes), in the target's units."""
    return {f"{split}_{name}": getattr(scores, name) for name in ("mae", "rmse", "r2")
            for split, scores in (("train", train), ("val", val))}


def step_scheduler(scheduler, kind: str, monitored: float) -> None:
    """The epoch's scheduler step (onecycle steps per batch, in the loop; plateau reads the monitor)."""
    import torch

    if scheduler is None or kind == "onecycle":
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if math.isfinite(monitored):
            scheduler.step(monitored)
    else:
        scheduler.step()
