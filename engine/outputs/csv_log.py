"""metrics.csv: the run's epochs as a spreadsheet or pandas reads them, beside metrics.jsonl.

The same columns (EPOCH_RECORD_FIELDS) and the same numbers: the file is rebuilt from metrics.jsonl when the
writer starts (a resume has just rewritten that file to the checkpoint's history), then one row is appended per
epoch from the record that metrics.jsonl gets too.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable

from engine.events import EPOCH_RECORD_FIELDS, EpochCompleted, Event
from engine.io.atomic import open_append, write_all
from engine.runs.folder import cannot_write, write_run_file
from engine.runs.records import read_metrics

CSV_NAME = "metrics.csv"


def csv_text(rows: Iterable[dict[str, Any]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EPOCH_RECORD_FIELDS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class MetricsCsvWriter:
    """A listener: one row of metrics.csv per EpochCompleted."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CSV_NAME
        write_run_file(self.path, csv_text(read_metrics(Path(run_dir) / "metrics.jsonl").items, header=True))
        try:
            self.fd = open_append(self.path)
        except OSError as e:
            raise cannot_write(self.path, e) from None

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochCompleted) and self.fd >= 0:
            write_all(self.fd, csv_text([event.metrics()], header=False).encode("utf-8"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
