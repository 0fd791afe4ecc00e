"""What a run carries between epochs and into a full checkpoint, and how it is put back.

A full checkpoint (`last.pth`, `epoch_N.pth`) is a plain dict, nanoGPT-style:
chapter 7.1's keys (`epoch`, `model_state_dict`, `optimizer_state_dict`,
`train_loss`, `val_loss`, `val_acc`) plus scheduler, grad-scaler and RNG
states, the history, the settings and the position inside an interrupted
epoch, so that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.training import weights as ck
from engine.events import EPOCH_RECORD_FIELDS, REGRESSION_FIELDS
from engine.settings.renames import read_renamed

# what a resumed run may not change: the checkpoint's optimizer and scheduler states belong to the ones it was
# trained with, and the precision and the step decide the numbers of every epoch its settings.toml describes
MUST_MATCH_ON_RESUME = {
    "optimizer": "its optimizer state",
    "scheduler": "its scheduler state",
    "precision": "its precision (and grad-scaler state)",
    "accel": "the training step of its earlier epochs",
}
# an epoch's record, less its number (the position in each list); a classification's regression keys hold None
HISTORY_KEYS = EPOCH_RECORD_FIELDS[1:] + REGRESSION_FIELDS


def history_rows(history: dict[str, list]) -> list[dict[str, Any]]:
    """The epochs' records from a run's history, each with its own task's fields (engine.events.record_fields)."""
    rows = []
    for i in range(len(history["train_loss"])):
        row = {"epoch": i + 1, **{k: history[k][i] for k in HISTORY_KEYS}}
        if all(row[k] is None for k in REGRESSION_FIELDS):
            row = {k: v for k, v in row.items() if k not in REGRESSION_FIELDS}
        rows.append(row)
    return rows


@dataclass
class RunState:
    """Everything that changes during a run and goes into a full checkpoint (ignite's `state`)."""

    epoch: int = 0  # completed epochs
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    best_epoch: int | None = None
    best_value: float | None = None
    bad_epochs: int = 0  # epochs since the monitor last improved (early stopping)


@dataclass
class TrainingParts:
    """What a full checkpoint is made of, and what a resume puts it back into."""

    settings: Any  # engine.settings.config.Settings
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # an LR scheduler, or None
    scaler: torch.amp.GradScaler
    device: torch.device
    generator: torch.Generator  # the data order's
    state: RunState
    preprocessing: Any = None  # engine.data.preprocessing.Preprocessing: eval and resume apply the same one
    world_size: int = 1  # processes training together (engine.training.distributed)


def stored_preprocessing(c: Any) -> dict[str, Any] | None:
    """The preprocessing a full checkpoint recorded (None: a checkpoint from before it was recorded, or weights)."""
    return c.get("preprocessing") if isinstance(c, dict) and isinstance(c.get("preprocessing"), dict) else None


def restore(parts: TrainingParts, c: dict[str, Any], source: str) -> dict[str, Any] | None:
    """Put a full checkpoint back: weights, optimizer, scheduler, scaler, state, RNGs.

    Returns the position inside an interrupted epoch (None at an epoch boundary): the loop replays that
    epoch's first batches and then sets the global RNGs it holds.
    """
    if not isinstance(c, dict) or "model_state_dict" not in c or "optimizer_state_dict" not in c:
        raise ck.CheckpointError(
            f"{source}: not a full checkpoint (best.pth holds weights only); resume from last.pth or epoch_N.pth"
        )
    if int(c.get("format_version", 1)) > ck.FORMAT_VERSION:
        raise ck.CheckpointError(
            f"{source}: checkpoint format {c['format_version']} is newer than this trainconsole reads "
            f"({ck.FORMAT_VERSION}); upgrade trainconsole"
        )
    ck.load_weights(parts.model, c["model_state_dict"], source)
    _check_settings_fit(parts.settings, c, source)
    try:
        parts.optimizer.load_state_dict(c["optimizer_state_dict"])
        if parts.scheduler is not None and c.get("scheduler_state_dict"):
            _restore_scheduler(parts.scheduler, c["scheduler_state_dict"])
        if c.get("scaler_state_dict"):
            parts.scaler.load_state_dict(c["scaler_state_dict"])
    except (ValueError, KeyError, TypeError) as e:
        t = parts.settings.training
        raise ck.CheckpointError(
            f"{source}: its optimizer or scheduler state does not fit training.optimizer = '{t.optimizer}', "
            f"scheduler = '{t.scheduler}' ({e})"
        ) from None
    _apply_new_rates(parts, c)
    st = parts.state
    st.epoch = int(c["epoch"])
    st.history = {k: list(c.get("history", {}).get(k, [])) for k in HISTORY_KEYS}
    epochs = len(st.history["train_loss"])
    for k, values in st.history.items():  # a key older checkpoints lack ("time"): None for their epochs
        values[:0] = [None] * (epochs - len(values))
    best = c.get("best", {})
    st.best_epoch, st.best_value = best.get("epoch"), best.get("value")
    st.bad_epochs = int(best.get("bad_epochs", 0))
    rng = c.get("rng") or {}
    if int(c.get("batch", 0)) > 0:
        # the global RNGs are set once the epoch's first batches have been replayed
        return {**c["partial"], "batch": int(c["batch"]), "data_epoch_start": rng["data_epoch_start"], "rng": rng}
    if rng:
        set_global_rng(rng, parts.device)
        # data_epoch_start, not data: a stop before the epoch's first batch saved data after its shuffle was drawn
        parts.generator.set_state(rng.get("data_epoch_start", rng["data"]))
    return None


def restart_epoch_if_resharded(
    parts: TrainingParts, c: dict[str, Any], partial: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """A checkpoint saved mid-epoch by another number of processes: that epoch starts again from its beginning.

    Its position counts batches of a different shard size, so no batch boundary here matches it; the epoch's
    data order is drawn again from the same state, and its first batches are trained again. Returns the
    position to continue from and a note for the user ("" when nothing changed).
    """
    saved = int(c.get("world_size", 1))
    if partial is None or saved == parts.world_size:
        return partial, ""
    parts.generator.set_state(partial["data_epoch_start"])
    set_global_rng(partial["rng"], parts.device)
    return None, (
        f"the checkpoint stopped at batch {partial['batch']} of epoch {int(c['epoch']) + 1} with {saved} "
        f"process{'es' * (saved != 1)}; with {parts.world_size} that position does not exist, "
        f"so epoch {int(c['epoch']) + 1} starts again from its beginning"
    )


def _check_settings_fit(settings: Any, c: dict[str, Any], source: str) -> None:
    """A changed optimizer or scheduler would load silently and crash (or mislead) at the first step: refuse it here."""
    stored, _ = read_renamed(c.get("settings") or {}, source)  # a checkpoint's old keys, by today's names
    saved = stored.get("training") or {}
    now = settings.training
    for key, what in MUST_MATCH_ON_RESUME.items():
        if key in saved and saved[key] != getattr(now, key):
            raise ck.CheckpointError(
                f"{source}: trained with training.{key} = {saved[key]!r}, resumed with {getattr(now, key)!r}, "
                f"which does not fit {what}; resume with {key} = {saved[key]!r} or start a new run"
            )


def _apply_new_rates(parts: TrainingParts, c: dict[str, Any]) -> None:
    """`--set training.lr` (or weight_decay, momentum) on a resume: the optimizer state loaded the old values over them.

    Without a scheduler the new value is the rate from now on. A scheduler's rates follow from the lr it started
    with, so a resume keeps that one: asking for another is refused rather than silently ignored.
    """
    saved = (c.get("settings") or {}).get("training") or {}
    now = parts.settings.training
    if "lr" in saved and saved["lr"] != now.lr and now.scheduler != "none":
        raise ck.CheckpointError(
            f"training.lr = {now.lr!r}: this run's scheduler '{now.scheduler}' set its rates "
            f"from lr = {saved['lr']!r}; resume with lr = {saved['lr']!r} or start a new run"
        )
    for key, group_key in (("lr", "lr"), ("weight_decay", "weight_decay"), ("momentum", "momentum")):
        if key in saved and saved[key] != getattr(now, key):
            for group in parts.optimizer.param_groups:
                if group_key in group:
                    group[group_key] = getattr(now, key)
                    if key == "lr" and "initial_lr" in group:
                        group["initial_lr"] = now.lr


def _restore_scheduler(sch: Any, state: dict[str, Any]) -> None:
    """Load the scheduler's position; a schedule laid out for the run's length follows a raised training.epochs."""
    layout = {k: getattr(sch, k) for k in ("total_steps", "_schedule_phases", "T_max") if hasattr(sch, k)}
    sch.load_state_dict(state)
    for k, v in layout.items():
        setattr(sch, k, v)


def set_global_rng(rng: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda"):
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))


# -- checkpoints ----------------------------------------------------------
def make_checkpoint(
    parts: TrainingParts, batch: int = 0, partial: dict[str, Any] | None = None, epoch_start: torch.Tensor | None = None
) -> dict[str, Any]:
    """The full checkpoint: chapter 7.1's keys plus everything an exact resume needs, as tensors and plain types."""
    st, h = parts.state, parts.state.history
    last = {k: (h[k][-1] if h[k] else float("nan")) for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
    py = random.getstate()
    return {
        "format_version": ck.FORMAT_VERSION,
        "epoch": st.epoch,
        "batch": batch,
        "model_state_dict": parts.model.state_dict(),
        "optimizer_state_dict": parts.optimizer.state_dict(),
        "scheduler_state_dict": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "scaler_state_dict": parts.scaler.state_dict() if parts.scaler.is_enabled() else None,
        **last,
        "history": {k: list(v) for k, v in h.items()},
        "best": {
            "epoch": st.best_epoch,
            "value": st.best_value,
            "monitor": parts.settings.training.monitor,
            "bad_epochs": st.bad_epochs,
        },
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if parts.device.type == "cuda" else [],
            "python": [py[0], list(py[1]), py[2]],
            "data": parts.generator.get_state(),
            "data_epoch_start": epoch_start if epoch_start is not None else parts.generator.get_state(),
        },
        "partial": partial or {},
        "settings": parts.settings.to_dict(),
        "preprocessing": parts.preprocessing.state() if parts.preprocessing is not None else None,
        "world_size": parts.world_size,
        "torch_version": str(torch.__version__),
    }


def seed_everything(seed: int) -> None:
    if seed < 0:
        return
    random.seed(seed)
    torch.manual_seed(seed)
    import numpy as np  # the data pipeline's own draws

    np.random.seed(seed % 2**32)
