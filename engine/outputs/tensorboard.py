"""TensorBoard scalars (chapter 8.2): the chapter's five tags, one value per epoch, in the run folder.

The step is the epoch's number as metrics.jsonl and the console show it (1 for the first epoch). A resumed run
appends a new event file to the same folder. A resume continues from its checkpoint's epoch, so the writer
starts with `purge_step` = that epoch + 1: TensorBoard then hides any step a rewound run had logged beyond its
checkpoint (a resume from an older epoch_N.pth), and every epoch keeps exactly one value, the latest.
"""

from __future__ import annotations

from pathlib import Path

from engine.events import EpochCompleted, Event
from engine.runs.folder import read_jsonl

TAGS = {
    "Loss/train": "train_loss",
    "Loss/val": "val_loss",
    "Accuracy/train": "train_acc",
    "Accuracy/val": "val_acc",
    "LearningRate": "lr",
}


class TensorBoardWriter:
    """A listener: the five tags of each EpochCompleted, flushed at each epoch so a reader follows the run live."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        epochs_done = sum(1 for _ in read_jsonl(Path(run_dir) / "metrics.jsonl"))
        self.writer = SummaryWriter(str(run_dir), purge_step=epochs_done + 1 if epochs_done else None)

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochCompleted):
            for tag, name in TAGS.items():
                self.writer.add_scalar(tag, getattr(event, name), event.epoch)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
