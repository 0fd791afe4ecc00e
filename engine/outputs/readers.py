"""Reading logs back into scalar series: our run folders, TensorBoard event files, Lightning CSVLogger output.

Everything here only reads. A series is a list of (step, value) under a tag; a source is one run's tags. A
folder may hold several runs: each sub-folder with event files (as `tensorboard --logdir` shows them), each
Lightning `version_N/metrics.csv`, each of our run folders.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.events import REGRESSION_FIELDS
from engine.runs.records import RefusedFile, count, number, open_file, read_metrics, read_text
from engine.settings.config import SettingsError

Series = list[tuple[int, float]]
RUN_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")
SKIP_FOLDERS = ("checkpoints", ".control")
MAX_TAGS = 1000  # a run logs tens of scalars; a log of 100,000 columns would stall the viewer's table for a minute


@dataclass
class Source:
    """One run's scalars: tag -> series, and the file they came from (shown to the user)."""

    name: str
    path: Path
    kind: str  # "run", "tensorboard" or "csv"
    tags: dict[str, Series] = field(default_factory=dict)
    note: str = ""  # what the reader skipped or refused in its file, one line ("" when it read cleanly)

    def __post_init__(self) -> None:
        """At most MAX_TAGS tags (the first by name); the note says how many were left out."""
        if len(self.tags) > MAX_TAGS:
            left_out = f"{self.path}: {len(self.tags) - MAX_TAGS:,} tags left out (more than {MAX_TAGS:,})"
            self.tags = {tag: self.tags[tag] for tag in sorted(self.tags)[:MAX_TAGS]}
            self.note = f"{self.note}; {left_out}" if self.note else left_out


def is_run_folder(path: Path) -> bool:
    """A folder with a metrics.jsonl (whatever it is: a FIFO in its place is the reader's to refuse, and say)."""
    return os.path.lexists(Path(path) / "metrics.jsonl")


def read_run(path: Path) -> Source:
    """Our run folder's metrics.jsonl: tags are its columns, steps its epochs."""
    found = read_metrics(Path(path) / "metrics.jsonl")
    regression = tuple(name for name in REGRESSION_FIELDS if any(name in r for r in found.items))  # MAE, RMSE, R²
    tags = {name: [(r["epoch"], _nan_if_none(r.get(name))) for r in found.items] for name in RUN_METRICS + regression}
    return Source(Path(path).name, Path(path), "run", tags, found.note())


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def read_tensorboard(folder: Path) -> Source:
    """Every scalar of the event files directly in `folder`, as TensorBoard's own reader shows them.

    Each file is read on its own, and only a regular one (TensorBoard's reader would wait on a FIFO); a file it
    cannot read, a step that is not a count and a value that is not a finite number are skipped and counted.
    """
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
    except ImportError:
        raise SettingsError(f"{folder}: reading event files needs tensorboard: pip install 'trainconsole[tensorboard]'")
    tags: dict[str, Series] = {}
    notes, skipped = [], 0
    for path in sorted(folder.glob("events.out.tfevents.*")):
        try:
            fd = open_file(path)
        except RefusedFile as e:
            notes.append(str(e))
            continue
        if fd is None:
            continue
        size = os.fstat(fd).st_size
        os.close(fd)
        try:
            found = _scalars_of(ea, path, tags)
        except Exception as e:  # a damaged file TensorBoard's reader gives up on: it hides only itself
            notes.append(f"{path}: unreadable ({type(e).__name__})")
            continue
        if found is None and size:  # random bytes, a bad first record: TensorBoard's reader says nothing of it
            notes.append(f"{path}: no record read (damaged, or not an event file)")
        skipped += found or 0
    for points in tags.values():
        points.sort(key=lambda p: p[0])
    if skipped:
        notes.append(f"{folder}: {skipped} value{'s' if skipped != 1 else ''} skipped (not a finite number)")
    return Source(folder.name, folder, "tensorboard", tags, "; ".join(notes))


def _scalars_of(ea, path: Path, tags: dict[str, Series]) -> int | None:
    """The scalars of one event file added to `tags`; how many were skipped (None: the file held no record)."""
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    try:
        acc.FirstEventTimestamp()
    except ValueError:
        return None
    found = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags().get("tensors", []):  # scalars written as tensors (add_scalar(new_style=True), TF 2)
        points = [(e.step, _tensor_scalar(e.tensor_proto)) for e in acc.Tensors(tag)]
        if points and all(v is not None for _, v in points):
            found.setdefault(tag, points)
    skipped = 0
    for tag, points in found.items():
        good = [(step, value) for step, value in points if count(step) is not None and _finite(value)]
        skipped += len(points) - len(good)
        tags.setdefault(tag, []).extend(good)
    return skipped


def _finite(value) -> bool:
    return type(value) is float and number(value) is not None and not math.isnan(value)


def _tensor_scalar(proto) -> float | None:
    from tensorboard.util import tensor_util

    try:
        array = tensor_util.make_ndarray(proto)
    except Exception:
        return None
    return float(array) if array.size == 1 and array.dtype.kind in "fiu" else None


def read_lightning_csv(path: Path) -> Source:
    """A Lightning CSVLogger metrics.csv: one column per metric, rows sparse, x = the `step` column.

    Any encoding a spreadsheet saves in reads; a row with a step that is not a count or a cell that is not a finite
    number is skipped and counted.
    """
    try:
        text = read_text(path) or ""
    except RefusedFile as e:
        return Source(path.parent.name, path, "csv", {}, str(e))
    tags: dict[str, Series] = {}
    rows, skipped = csv.reader(io.StringIO(text, newline="")), 0
    header = next(_csv_rows(rows), [])
    columns = [(i, c) for i, c in enumerate(header) if c not in ("step", "epoch")]
    step_at = header.index("step") if "step" in header else None
    for i, row in enumerate(_csv_rows(rows)):
        point = _csv_point(row, i, step_at, columns)
        if point is None:
            skipped += 1
            continue
        for column, value in point[1]:
            tags.setdefault(column, []).append((point[0], value))
    note = f"{path}: {skipped} row{'s' if skipped != 1 else ''} skipped (not valid numbers)" if skipped else ""
    return Source(path.parent.name, path, "csv", tags, note)


def _csv_rows(rows):
    """The rows of a csv.reader, ending (not raising) at a row the csv module cannot read."""
    while True:
        try:
            yield next(rows)
        except (StopIteration, csv.Error):
            return


def _csv_point(row: list[str], index: int, step_at: int | None, columns) -> tuple[int, list] | None:
    """(step, [(column, value), ...]) of one row; None when a cell or its step is not what it should be."""
    if not any(cell.strip() for cell in row):
        return index, []
    cell = row[step_at].strip() if step_at is not None and step_at < len(row) else ""
    step = _parse(cell) if cell else float(index)
    if step is None or step != int(step) or count(int(step)) is None:
        return None
    values = []
    for at, column in columns:
        text = row[at].strip() if at < len(row) else ""
        if text:
            value = _parse(text)
            if value is None:
                return None
            values.append((column, value))
    return int(step), values


def _parse(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if _finite(value) else None


def find_sources(path: str | Path) -> list[Source]:
    """Every run under `path` (a run folder, a folder of event files, a metrics.csv, or a folder of them)."""
    path = Path(path)
    if not path.exists():
        raise SettingsError(f"{path}: no such file or folder")
    if not path.is_dir():
        return [_file_source(path)]
    sources = []
    for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        if any(part in SKIP_FOLDERS for part in folder.relative_to(path).parts):
            continue
        source = _folder_source(folder)
        if source is not None:
            sources.append(source)
    for source in sources:  # names as `tensorboard --logdir` shows them: the path under the folder opened
        source.name = _name_under(source, path)
    return sources


def _file_source(path: Path) -> Source:
    """The run one file holds: an event file (read with the others of its folder) or a metrics.csv."""
    if path.name.startswith("events.out.tfevents"):
        return read_tensorboard(path.parent)
    if path.suffix == ".csv":
        return read_lightning_csv(path)
    raise SettingsError(f"{path}: not a metrics.csv or an event file (events.out.tfevents.*)")


def _folder_source(folder: Path) -> Source | None:
    """The run a folder holds directly: ours, event files, a metrics.csv; None when it holds none."""
    if is_run_folder(folder):
        return read_run(folder)
    if any(folder.glob("events.out.tfevents.*")):
        return read_tensorboard(folder)
    if os.path.lexists(folder / "metrics.csv"):
        return read_lightning_csv(folder / "metrics.csv")
    return None


def _name_under(source: Source, path: Path) -> str:
    """The source's path under the folder opened (the folder's own name for the folder itself)."""
    relative = source.path.relative_to(path) if source.path != path else Path(path.name)
    name = str(relative.parent if source.kind == "csv" and not source.path.is_dir() else relative)
    return path.name if name == "." else name
