"""Image folders (one sub-folder of images per class), read the way the images are.

Grayscale images stay one channel; with `data.image_size = 0` the images keep
their own size (the most common one, others resized to it); a folder that
fits in memory is decoded once, on a few threads, into a uint8 tensor and
batched by index like the built-in datasets. A file that cannot be decoded
is named in one line, or skipped and counted (`data.bad_images = "skip"`).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data.pixels import (
    HIGH_DEPTH, Header, Range, describe, folder_range, read_header, to_8bit, value_range,
)
from engine.settings.config import DataSettings, SettingsError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
DECODE_BYTES_MAX = 2 * 2**30  # decoded pixels (uint8) held in memory at most; above it files are read per sample


class ImageFolderError(SettingsError):
    """The image folder cannot be read as one sub-folder of images per class."""


def _scan(root: Path, where: str) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[tuple[Path, int]] = []
    for k, name in enumerate(classes):
        found = sorted(
            p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not found:
            raise ImageFolderError(f"{where}: class folder '{name}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += [(p, k) for p in found]
    if len(classes) < 2:
        what = f"a single class folder '{classes[0]}'" if classes else "no class sub-folders"
        raise ImageFolderError(f"{where}: {what}; expected one sub-folder of images per class, at least two")
    return classes, files


def decode(path: Path, channels: int, size: tuple[int, int], rng: Range | None = None) -> np.ndarray | str:
    """The image as uint8 (height, width, channels), or why it cannot be decoded."""
    try:
        return to_8bit(path, channels, size, rng)
    except Exception as e:  # a truncated or corrupt file: PIL raises OSError, SyntaxError, ValueError, ...
        return f"{type(e).__name__}: {e}"


class FolderImages(Dataset):
    """Files decoded on access: the DataLoader path, for a folder too large to decode into memory."""

    def __init__(self, files: list[tuple[Path, int]], channels: int, size: tuple[int, int], rng: Range | None):
        self.files, self.channels, self.size, self.rng = files, channels, size, rng
        self.targets = [k for _, k in files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path, k = self.files[i]
        pixels = decode(path, self.channels, self.size, self.rng)
        if isinstance(pixels, str):
            raise ImageFolderError(f"data.path: cannot decode {path}: {pixels}")
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), k


def _refuse_or_skip(bad: list[tuple[Path, str]], settings: DataSettings, where: str) -> None:
    if bad and settings.bad_images == "error":
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ImageFolderError(
            f"{where}: cannot decode {path}: {why}{more}; set data.bad_images = 'skip' to train without such files"
        )


@dataclass
class ImageFolder:
    """What a folder holds: decoded pixels (x, y), or, too large for memory, a per-sample dataset of its files."""

    classes: list[str]
    notes: list[str]
    x: torch.Tensor | None = None  # uint8 (N, C, H, W)
    y: torch.Tensor | None = None
    files: FolderImages | None = None


def _deep_range(good: list[tuple[tuple[Path, int], Header]], pool: ThreadPoolExecutor) -> Range | None:
    """The folder's one range for its images of more than 8 bits (None without any): a pass over their pixels."""
    deep = [(p, h.mode) for (p, _), h in good if h.mode in HIGH_DEPTH]
    if not deep:
        return None
    return folder_range(list(pool.map(lambda d: value_range(d[0]), deep)), [m for _, m in deep])


def read_image_folder(settings: DataSettings) -> ImageFolder:
    where = f"data.path = '{settings.path}'"
    root = Path(settings.path)
    if not root.is_dir():
        raise ImageFolderError(f"{where}: no such folder (expected one sub-folder of images per class)")
    classes, files = _scan(root, where)
    headers = [read_header(p) for p, _ in files]
    bad = [(p, h) for (p, _), h in zip(files, headers) if isinstance(h, str)]
    _refuse_or_skip(bad, settings, where)
    good = [(f, h) for f, h in zip(files, headers) if not isinstance(h, str)]
    channels = 1 if all(h.mode in GRAY_MODES for _, h in good) else 3
    if settings.image_size:
        size = (settings.image_size, settings.image_size)
    else:
        size = Counter(h.size for _, h in good).most_common(1)[0][0]
    files = [f for f, _ in good]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        rng = _deep_range(good, pool)
        shape = f"{channels} channel{'s' * (channels > 1)}, {size[0]}x{size[1]} px"
        notes = [shape, *describe([h for _, h in good], rng)]
        if settings.in_memory == "false" or len(files) * channels * size[0] * size[1] > DECODE_BYTES_MAX:
            notes += [f"{len(bad)} files skipped (cannot be decoded)"] * bool(bad)
            return ImageFolder(classes, notes, files=FolderImages(files, channels, size, rng))
        decoded = list(pool.map(lambda f: decode(f[0], channels, size, rng), files, chunksize=64))
    late = [(p, d) for (p, _), d in zip(files, decoded) if isinstance(d, str)]  # truncated past a valid header
    _refuse_or_skip(late, settings, where)
    kept = [(d, k) for (_, k), d in zip(files, decoded) if not isinstance(d, str)]
    skipped = len(bad) + len(late)
    if len({k for _, k in kept}) < 2:
        raise ImageFolderError(f"{where}: the images that could be decoded are of a single class")
    x = torch.from_numpy(np.stack([d for d, _ in kept])).permute(0, 3, 1, 2).contiguous()
    notes += ["decoded once into memory"] + [f"{skipped} files skipped (cannot be decoded)"] * bool(skipped)
    return ImageFolder(classes, notes, x, torch.tensor([k for _, k in kept]))
