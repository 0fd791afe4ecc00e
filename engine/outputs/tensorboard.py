"""TensorBoard scalars (chapter 8.2): the chapter's five tags (a regression: MAE, RMSE and R² for the
accuracies), one value per epoch, in the run folder.

The step is the epoch's number as metrics.jsonl and the console show it (1 for the first epoch). A resumed run
appends a new event file to the same folder. A resume continues from its checkpoint's epoch, so the writer
starts with `purge_step` = that epoch + 1: TensorBoard then hides any step a rewound run had logged beyond its
checkpoint (a resume from an older epoch_N.pth), and every epoch keeps exactly one value, the latest.

The event file is ours to open: TensorBoard's own writer (under torch's SummaryWriter) opens its file by name at
every flush, following a symlink and blocking on a FIFO, so a run folder copied from elsewhere could send it
anywhere. Here the file is created new (O_EXCL, never through a link) in the run folder, kept open, and filled
with the records TensorBoard's writer would write: the same protobufs (torch's `scalar`), the same framing
(tensorboard's RecordWriter). tests/outputs/test_writers.py reads them back with TensorBoard's own reader.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from pathlib import Path

from engine.events import EpochCompleted, Event
from engine.io.atomic import open_regular
from engine.runs.folder import cannot_write
from engine.runs.records import read_metrics

TAGS = {
    "Loss/train": "train_loss",
    "Loss/val": "val_loss",
    "Accuracy/train": "train_acc",
    "Accuracy/val": "val_acc",
    "LearningRate": "lr",
}
# a regression's tags, in place of the accuracies (which it has not): in the target's units, R² unitless
REGRESSION_TAGS = {
    "MAE/train": "train_mae",
    "MAE/val": "val_mae",
    "RMSE/train": "train_rmse",
    "RMSE/val": "val_rmse",
    "R2/train": "train_r2",
    "R2/val": "val_r2",
}


_files_opened = itertools.count()


def event_file_name() -> str:
    """TensorBoard's pattern: readers look for "tfevents" and read the files in name order, so the files of one
    process in one second follow its counter; a random suffix, so that no file can be placed there beforehand."""
    when, host, pid = int(time.time()), socket.gethostname(), os.getpid()
    return f"events.out.tfevents.{when:010d}.{host}.{pid}.{next(_files_opened)}.{secrets.token_hex(4)}"


class TensorBoardWriter:
    """A listener: the five tags of each EpochCompleted, flushed at each epoch so a reader follows the run live."""

    def __init__(self, run_dir: Path):
        from tensorboard.compat.proto.event_pb2 import Event as Record, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        epochs_done = len(read_metrics(Path(run_dir) / "metrics.jsonl").items)
        self.path = Path(run_dir) / event_file_name()
        try:  # created here or refused: a link, a FIFO or a file already at this name is never opened
            self._file = os.fdopen(open_regular(self.path, os.O_WRONLY | os.O_EXCL), "wb")
        except OSError as e:
            raise cannot_write(self.path, e) from None
        self._records = RecordWriter(self._file)
        self._record = Record
        self._write(Record(file_version="brain.Event:2"))
        if epochs_done:  # SummaryWriter's purge_step: hide the steps a rewound run had logged past its checkpoint
            self._write(Record(step=epochs_done + 1, session_log=SessionLog(status=SessionLog.START)))
        self._file.flush()

    def _write(self, record) -> None:
        record.wall_time = time.time()
        self._records.write(record.SerializeToString())

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochCompleted):
            from torch.utils.tensorboard.summary import scalar

            tags = {**TAGS, **REGRESSION_TAGS} if event.regression else TAGS
            for tag, name in tags.items():
                value = getattr(event, name)
                if value is not None:
                    self._write(self._record(step=event.epoch, summary=scalar(tag, float(value))))
            self._file.flush()

    def close(self) -> None:
        self._file.close()
