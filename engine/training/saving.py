"""What a run saves, and when (chapters 7 and 8.2): best.pth when the monitor improves, epoch_N.pth as the
retention keeps them, last.pth at every epoch and at a stop. Never from non-finite weights: a NaN keeps the
last good files. Where the files go is the session's business (engine.training.session)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from engine.events import CheckpointSaved, Event
from engine.training.policies import CheckpointRetention
from engine.training.session import Session
from engine.training.snapshot import TrainingParts, make_checkpoint


def weights_finite(model: torch.nn.Module) -> bool:
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


class Saver:
    """Rank 0's checkpoints of one run; every other rank saves nothing."""

    def __init__(self, session: Session, parts: TrainingParts, retention: CheckpointRetention,
                 emit: Callable[[Event], None], writes: bool):
        self.session, self.parts, self.retention, self.emit, self.writes = session, parts, retention, emit, writes
        self.finite_epoch = 0  # the last epoch the checkpoints were written at

    def save(self, obj: Any, name: str, kind: str) -> None:
        path = self.session.save(obj, name) if self.writes else None
        if path is None:
            return
        monitor = self.parts.settings.training.monitor
        values = self.parts.state.history[monitor]
        self.emit(CheckpointSaved(self.parts.state.epoch, str(path), kind, monitor,
                                  values[-1] if values else float("nan")))

    def after_epoch(self, is_best: bool) -> None:
        """An epoch with finite weights: best.pth if it is the best, the numbered file if kept, last.pth."""
        epoch = self.finite_epoch = self.parts.state.epoch
        if is_best:
            self.save(self.parts.model.state_dict(), "best.pth", "best")
        full = make_checkpoint(self.parts)
        if self.retention.keeps(epoch):
            self.save(full, f"epoch_{epoch}.pth", "epoch")
            if self.writes:  # the new file is written before an old one goes
                for old in self.retention.to_remove(self.session.saved_epochs()):
                    self.session.remove_epoch(old)
        self.save(full, "last.pth", "last")

    def kept_note(self) -> str:
        """No checkpoint is written from non-finite weights: what the files hold instead."""
        held = f"the checkpoints keep epoch {self.finite_epoch}" if self.finite_epoch else "none is written"
        return f"no checkpoint written from non-finite weights ({held})"
