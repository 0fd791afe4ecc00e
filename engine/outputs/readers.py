"""Reading logs back into scalar series: our run folders, TensorBoard event files, Lightning CSVLogger output.

Everything here only reads. A series is a list of (step, value) under a tag; a source is one run's tags. A
folder may hold several runs: each sub-folder with event files (as `tensorboard --logdir` shows them), each
Lightning `version_N/metrics.csv`, each of our run folders.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from engine.runs.folder import read_jsonl
from engine.settings.config import SettingsError

Series = list[tuple[int, float]]
RUN_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")
SKIP_FOLDERS = ("checkpoints", ".control")


@dataclass
class Source:
    """One run's scalars: tag -> series, and the file they came from (shown to the user)."""

    name: str
    path: Path
    kind: str  # "run", "tensorboard" or "csv"
    tags: dict[str, Series] = field(default_factory=dict)


def is_run_folder(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file()


def read_run(path: Path) -> Source:
    """Our run folder's metrics.jsonl: tags are its columns, steps its epochs."""
    rows = list(read_jsonl(Path(path) / "metrics.jsonl"))
    tags = {name: [(int(r["epoch"]), _number(r.get(name))) for r in rows] for name in RUN_METRICS}
    return Source(Path(path).name, Path(path), "run", tags)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_tensorboard(folder: Path) -> Source:
    """Every scalar of the event files directly in `folder`, as TensorBoard's own reader shows them."""
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
    except ImportError:
        raise SettingsError(f"{folder}: reading event files needs tensorboard: pip install 'trainconsole[tensorboard]'")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags().get("tensors", []):  # scalars written as tensors (add_scalar(new_style=True), TF 2)
        points = [(e.step, _tensor_scalar(e.tensor_proto)) for e in acc.Tensors(tag)]
        if points and all(v is not None for _, v in points):
            tags.setdefault(tag, points)
    return Source(folder.name, folder, "tensorboard", tags)


def _tensor_scalar(proto) -> float | None:
    from tensorboard.util import tensor_util

    try:
        array = tensor_util.make_ndarray(proto)
    except Exception:
        return None
    return float(array) if array.size == 1 and array.dtype.kind in "fiu" else None


def read_lightning_csv(path: Path) -> Source:
    """A Lightning CSVLogger metrics.csv: one column per metric, rows sparse, x = the `step` column."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in (rows[0].keys() if rows else []) if c not in ("step", "epoch", None)]
    tags: dict[str, Series] = {}
    for i, row in enumerate(rows):
        step = int(_number(row.get("step")) if row.get("step") not in (None, "") else i)
        for column in columns:
            if row.get(column) not in (None, ""):
                tags.setdefault(column, []).append((step, _number(row[column])))
    name = path.parent.name if path.parent.name.startswith("version_") else path.parent.name
    return Source(name, path, "csv", tags)


def find_sources(path: str | Path) -> list[Source]:
    """Every run under `path` (a run folder, a folder of event files, a metrics.csv, or a folder of them)."""
    path = Path(path)
    if not path.exists():
        raise SettingsError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name.startswith("events.out.tfevents"):
            return [read_tensorboard(path.parent)]
        if path.suffix == ".csv":
            return [read_lightning_csv(path)]
        raise SettingsError(f"{path}: not a metrics.csv or an event file (events.out.tfevents.*)")
    sources = []
    for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        if any(part in SKIP_FOLDERS for part in folder.relative_to(path).parts):
            continue
        if is_run_folder(folder):
            sources.append(read_run(folder))
        elif any(folder.glob("events.out.tfevents.*")):
            sources.append(read_tensorboard(folder))
        elif (folder / "metrics.csv").is_file():
            sources.append(read_lightning_csv(folder / "metrics.csv"))
    for source in sources:  # names as `tensorboard --logdir` shows them: the path under the folder opened
        relative = source.path.relative_to(path) if source.path != path else Path(path.name)
        source.name = str(relative.parent if source.kind == "csv" and source.path.is_file() else relative)
        if source.name == ".":
            source.name = path.name
    return sources
