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

from engine.events import EPOCH_RECORD_FIELDS, EpochCompleted, Event, record_fields
from engine.io.atomic import open_append, write_all
from engine.runs.folder import cannot_write, write_run_file
from engine.runs.records import read_metrics

CSV_NAME = "metrics.csv"


def csv_text(rows: Iterable[dict[str, Any]], header: bool, fields: tuple[str, ...] = EPOCH_RECORD_FIELDS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class MetricsCsvWriter:
    """A listener: one row of metrics.csv per EpochCompleted."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CSV_NAME
        self.rows = read_metrics(Path(run_dir) / "metrics.jsonl").items
        self.fields = record_fields(self.rows[-1]) if self.rows else EPOCH_RECORD_FIELDS
        self.fd = -1
        self._rewrite()

    def _rewrite(self) -> None:
        """The whole file again: at the start, and when a regression's first epoch adds its columns."""
        if self.fd >= 0:
            os.close(self.fd)
        write_run_file(self.path, csv_text(self.rows, header=True, fields=self.fields))
        try:
            self.fd = open_append(self.path)
        except OSError as e:
            raise cannot_write(self.path, e) from None

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochCompleted) and self.fd >= 0:
            row = event.metrics()
            self.rows.append(row)
            if record_fields(row) != self.fields:
                self.fields = record_fields(row)
                self._rewrite()
                return
            write_all(self.fd, csv_text([row], header=False, fields=self.fields).encode("utf-8"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
