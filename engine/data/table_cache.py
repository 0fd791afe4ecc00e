"""Decoded tables kept on disk, so the next run of an unchanged file skips parsing it.

Where: $XDG_CACHE_HOME/trainconsole/tables (else ~/.cache/trainconsole/tables), one `.npz` file per table: the
float32 features, the int64 targets and a JSON record of the rest (NumPy's own format, read back with
allow_pickle=False: never pickle). The file's name is a hash of what shapes the table: the data file's path,
size, modification time and first and last MB, the settings that decide how it is read, a checkpoint's
categories and roles, and READER_VERSION. A cache file is written atomically and checked when read back; one
that is damaged, foreign or inconsistent is ignored (and replaced by the next write), never trusted.
Turned off by `data.table_cache = false` or TRAINCONSOLE_TABLE_CACHE=off.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from engine.io.atomic import atomic_write
from engine.settings.config import DataSettings

READER_VERSION = 1  # raise when the reader's output for the same file and settings changes
EDGE_BYTES = 1 << 20
SHAPING = ("label_column", "csv_separator", "csv_decimal", "csv_encoding", "csv_missing", "csv_text", "columns")
OFF_WORDS = ("off", "0", "false", "no")
_META_LISTS = ("class_names", "feature_names", "notes")


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "trainconsole" / "tables"


def enabled(settings: DataSettings) -> bool:
    return settings.table_cache and os.environ.get("TRAINCONSOLE_TABLE_CACHE", "").strip().lower() not in OFF_WORDS


def cache_key(settings: DataSettings, categories: dict | None, roles: dict | None) -> str | None:
    """The hash naming the table's cache file; None when the data file cannot be looked at."""
    path = Path(settings.path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None
        with open(path, "rb") as fh:
            head = fh.read(EDGE_BYTES)
            fh.seek(max(0, info.st_size - EDGE_BYTES))
            tail = fh.read(EDGE_BYTES)
    except OSError:
        return None
    shape = {
        "version": READER_VERSION, "path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns,
        "edges": hashlib.sha256(head + tail).hexdigest(), "settings": {k: getattr(settings, k) for k in SHAPING},
        "categories": categories or {}, "roles": roles or {},
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode("utf-8")).hexdigest()


def load(key: str) -> dict[str, Any] | None:
    """The table stored under `key` (Table's fields: x, y, class_names, ...), or None when absent or not sound."""
    path = cache_folder() / f"{key}.npz"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with np.load(path, allow_pickle=False) as stored:
            if set(stored.files) != {"x", "y", "meta"}:
                return None
            x, y, meta = stored["x"], stored["y"], stored["meta"]
        record = json.loads(meta.tobytes().decode("utf-8"))
    except Exception:  # noqa: BLE001 - a torn, foreign or hostile file: whatever numpy or zipfile raise, parse again
        return None
    return _checked(key, x, y, record)


def _checked(key: str, x: np.ndarray, y: np.ndarray, record: Any) -> dict[str, Any] | None:
    """The stored parts as Table's fields when they agree with one another and with `key`, else None."""
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    if x.dtype != np.float32 or x.ndim != 2 or y.dtype != np.int64 or y.shape != (x.shape[0],):
        return None
    lists = [record.get(k) for k in _META_LISTS]
    if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in lists):
        return None
    class_names, feature_names, notes = lists
    categories, roles = record.get("categories"), record.get("roles")
    if len(feature_names) != x.shape[1] or not isinstance(record.get("fill_missing"), bool):
        return None
    if not _str_dict(roles, str) or not _str_dict(categories, list):
        return None
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= max(len(class_names), 1)):
        return None
    return {"x": x, "y": y, "class_names": class_names, "feature_names": feature_names,
            "fill_missing": record["fill_missing"], "categories": categories, "notes": notes, "roles": roles}


def _str_dict(value: Any, kind: type) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, kind) for k, v in value.items())


def store(key: str, fields: dict[str, Any]) -> str | None:
    """Write the table under `key`; a one-line note when it could not be written (the run goes on without)."""
    meta = {k: fields[k] for k in (*_META_LISTS, "fill_missing", "categories", "roles")}
    meta["key"] = key
    arrays = {"x": np.ascontiguousarray(fields["x"], dtype=np.float32), "y": np.asarray(fields["y"], dtype=np.int64),
              "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{key}.npz"
        if path.is_symlink():  # not ours to follow: replaced by a regular file
            path.unlink()
        atomic_write(path, lambda fh: np.savez(fh, **arrays), follow_symlinks=False, durable=False)
    except OSError as e:
        return f"table cache not written ({e.strerror or e}): the next run parses the file again"
    return None
