"""Checkpoints that never lose work: atomic save, safe load, listing.

A full checkpoint (`last.pth`, `epoch_N.pth`) is a plain dict, a superset of
chapter 7.1's (`epoch`, `model_state_dict`, `optimizer_state_dict`,
`train_loss`, `val_loss`, `val_acc`), holding only tensors and plain Python
types so that `torch.load(..., weights_only=True)` reads it. `best.pth` is
the bare `state_dict` of chapter 7.3.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.io.atomic import NotARegularFile, atomic_write
from engine.runs.records import read_metrics, run_settings
from engine.runs.status import run_status, started_at
from engine.training.weights import FORMAT_VERSION, CheckpointError, load_weights, model_state  # noqa: F401 (callers use ck.*)

def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through `atomic_write`, as a regular file never written through a symlink.

    A failed save (disk full, permissions, a symlink in its place) leaves the old file intact and raises
    CheckpointError.
    """
    path = Path(path)
    try:
        atomic_write(path, lambda fh: torch.save(obj, fh), follow_symlinks=False)
    except NotARegularFile as e:
        raise CheckpointError(str(e)) from None
    except (
        OSError,
        RuntimeError,
    ) as e:  # atomic_write hands back the OSError that torch's zip writer turns into a RuntimeError
        reason = (
            e.strerror
            if isinstance(e, OSError) and e.strerror
            else (str(e).strip().splitlines() or [type(e).__name__])[0]
        )
        raise CheckpointError(f"cannot save {path}: {reason}; the previous {path.name}, if any, is intact") from None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)`: tensors and plain types only, never arbitrary code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if "weights_only" in str(e) or "Unsupported" in str(e) or "global" in str(e).lower():
            raise CheckpointError(
                f"{path}: refused: it holds Python objects other than tensors and plain types, "
                "which could run code when loaded"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{path}: {_unreadable_reason(path, e)}") from None


def _unreadable_reason(path: Path, e: BaseException) -> str:
    text = str(e)
    if path.stat().st_size == 0:
        return "empty file (a save that never completed?)"
    if (
        isinstance(e, EOFError)
        or "central directory" in text
        or "zip archive" in text
        or isinstance(e, zipfile.BadZipFile)
    ):
        return "truncated or damaged: not a complete PyTorch checkpoint"
    if isinstance(e, PermissionError):
        return f"cannot read: {e.strerror or text}"
    if isinstance(e, OSError):  # e.g. EINVAL: a zip directory pointing past the end of a cut file
        return "truncated or damaged: not a complete PyTorch checkpoint"
    if isinstance(e, (KeyError, IndexError)):  # the legacy unpickler met a byte that starts no pickle
        return "not a PyTorch checkpoint (unrecognised content)"
    first = (text.strip().splitlines() or [type(e).__name__])[0]
    return f"not a PyTorch checkpoint ({type(e).__name__}: {first[:100]})"


def resolve_resume(spec: str, runs_dir: str | os.PathLike) -> Path:
    """`last` → last.pth of the run of runs_dir started last; a run folder → its last.pth; else the file itself."""
    if spec == "last":
        runs = [p for p in Path(runs_dir).glob("*/checkpoints/last.pth")]
        if not runs:
            raise CheckpointError(f"--resume last: no run in {runs_dir} has a checkpoints/last.pth")
        return max(runs, key=lambda p: started_at(p.parent.parent))
    path = Path(spec)
    if path.is_dir():
        path = path / "checkpoints" / "last.pth"
    if not path.is_file():
        raise CheckpointError(f"--resume {spec}: no such checkpoint ({path})")
    return path


@dataclass
class CheckpointInfo:
    path: str
    kind: str  # "best", "last" or "epoch"
    epoch: int | None
    batch: int
    val_loss: float | None
    val_acc: float | None
    monitor_value: float | None
    size: int
    mtime: float
    is_best: bool
    error: str | None = None


@dataclass
class RunInfo:
    name: str
    path: str
    status: str
    detail: str
    epochs: int
    best_epoch: int | None
    monitor: str
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what its files' reader skipped or refused, one line each


def _describe(
    path: Path, kind: str, metrics: list[dict[str, Any]], monitor: str, best_epoch: int | None
) -> CheckpointInfo:
    st = path.stat()
    epoch, batch, vl, va, error = None, 0, None, None, None
    try:  # mmap: reads the header, not the tensors
        ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if kind == "best":
            epoch = best_epoch
        else:
            epoch, batch = int(ck.get("epoch", 0)), int(ck.get("batch", 0))
    except Exception as e:
        error = f"unreadable: {type(e).__name__}"
    row = next((m for m in metrics if m.get("epoch") == epoch), None)
    if row:
        vl, va = row.get("val_loss"), row.get("val_acc")
    value = row.get(monitor) if row else None
    return CheckpointInfo(str(path), kind, epoch, batch, vl, va, value, st.st_size, st.st_mtime, kind == "best", error)


def epoch_of_name(path: Path) -> int | None:
    """N of a file named epoch_N.pth (N in ASCII digits: "²".isdigit() too, and int() refuses it); None else."""
    digits = path.stem.removeprefix("epoch_")
    return int(digits) if path.stem.startswith("epoch_") and digits.isascii() and digits.isdecimal() else None


def list_runs(runs_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run folder under runs_dir, newest first, with its checkpoints."""
    from engine.settings.renames import RenamedSetting

    base = Path(runs_dir)
    if not base.is_dir():
        return []
    with warnings.catch_warnings():  # a listing of many old runs does not note each one's renamed keys
        warnings.simplefilter("ignore", RenamedSetting)
        return _list_runs(base)


def _list_runs(base: Path) -> list[RunInfo]:
    from engine.settings.config import SettingsError

    runs = []
    for run_dir in sorted(
        (p for p in base.iterdir() if p.is_dir() and (p / "checkpoints").is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    ):
        found = read_metrics(run_dir / "metrics.jsonl")
        metrics = found.items
        notes = [note for note in (found.note(),) if note]
        try:
            monitor = run_settings(run_dir / "settings.toml").training.monitor
        except SettingsError as e:
            monitor = "val_loss"
            notes.append(str(e))
        best_rows = [m for m in metrics if m["is_best"]]
        best_epoch = best_rows[-1]["epoch"] if best_rows else None
        status = run_status(run_dir)
        notes += [status.note] if status.note else []
        info = RunInfo(run_dir.name, str(run_dir), status.status, status.detail, len(metrics), best_epoch, monitor)
        info.notes = notes
        try:
            info.checkpoints = _checkpoints(run_dir / "checkpoints", metrics, monitor, best_epoch)
        except OSError as e:  # a checkpoints folder this user may not enter: the run is listed without them
            info.notes.append(f"{run_dir / 'checkpoints'}: cannot read: {e.strerror or e}")
        runs.append(info)
    return runs


def _checkpoints(ck_dir: Path, metrics: list[dict[str, Any]], monitor: str, best_epoch: int | None) -> list:
    found = []
    for name, kind in (("best.pth", "best"), ("last.pth", "last")):
        if (ck_dir / name).is_file():
            found.append(_describe(ck_dir / name, kind, metrics, monitor, best_epoch))
    for p in sorted(
        (p for p in ck_dir.glob("epoch_*.pth") if p.is_file()),  # a FIFO there would block torch.load
        key=lambda p: epoch_of_name(p) or 0,
    ):
        found.append(_describe(p, "epoch", metrics, monitor, best_epoch))
    return found
