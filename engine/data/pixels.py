"""Pixels as the files hold them, brought to 8 bits without losing their range.

Pillow's own conversion to "L" clips a 16-bit or 32-bit image at 255: a scientific camera's frame (values in the
thousands) comes out white. Here such images are scaled by the range the folder's images really use (one range for
the whole folder, so a brighter image stays brighter), EXIF orientation is applied, and palette and CMYK images are
converted to RGB. `describe` says once what was done.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HIGH_DEPTH = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits a pixel: scaled, never clipped
CONVERTED = {"P": "palette", "PA": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Header:
    mode: str
    size: tuple[int, int]  # (width, height), after the EXIF orientation
    turned: bool  # an EXIF orientation other than "as stored"


@dataclass(frozen=True)
class Range:
    """The values of the folder's high-depth images: `low` becomes 0 and `high` 255."""

    low: float
    high: float

    def to_uint8(self, values: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        if span <= 0:
            return np.zeros(values.shape, dtype=np.uint8)
        scaled = (np.nan_to_num(values, nan=self.low) - self.low) * (255.0 / span)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def read_header(path: Path) -> Header | str:
    """The file's mode and oriented size from its header, or why it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            width, height = im.size
            turned = orientation not in (1, None)
            if orientation in (5, 6, 7, 8):  # a quarter turn: width and height swap
                width, height = height, width
            return Header(im.mode, (width, height), turned)
    except Exception as e:  # PIL raises many types for a bad file
        return f"{type(e).__name__}: {e}"


def _values(im) -> np.ndarray:
    return np.asarray(im, dtype=np.float32)


def value_range(path: Path) -> tuple[float, float] | None:
    """The finite (min, max) of a high-depth image's pixels; None when it cannot be read or holds none."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return _finite_range(_values(ImageOps.exif_transpose(im)))
    except Exception:  # the decoding pass names the file
        return None


def _finite_range(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def folder_range(ranges: list[tuple[float, float] | None], modes: list[str]) -> Range:
    """One range for the folder. Integer images keep 0 as black (a camera's zero) unless they go below it."""
    known = [r for r in ranges if r is not None]
    if not known:
        return Range(0.0, 1.0)
    low, high = min(lo for lo, _ in known), max(hi for _, hi in known)
    if "F" not in modes:
        low = min(low, 0.0)
    return Range(low, high)


def to_8bit(path: Path, channels: int, size: tuple[int, int], rng: Range | None) -> np.ndarray:
    """The image as uint8 (height, width, channels): oriented, scaled by rng if deeper than 8 bits, resized.

    Raises what PIL raises for a file it cannot decode."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in HIGH_DEPTH:
            values = _values(im)
            if rng is None:  # an image alone: its own range, from the pixels in hand (no second read of the file)
                rng = Range(*(_finite_range(values) or (0.0, 1.0)))
            im = Image.fromarray(rng.to_uint8(values), "L")
        elif im.mode in CONVERTED:
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        im = im.convert("L" if channels == 1 else "RGB")
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        pixels = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy shares it
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def describe(headers: list[Header], rng: Range | None) -> list[str]:
    """What was done to the images, each kind of change once."""
    modes = Counter(h.mode for h in headers)
    notes = []
    deep = sum(modes[m] for m in HIGH_DEPTH)
    if deep and rng is not None:
        kinds = "/".join(sorted({("32-bit float" if m == "F" else "16-bit" if m.startswith("I;16") else "32-bit")
                                 for m in modes if m in HIGH_DEPTH}))
        notes.append(f"{deep} {kinds} images scaled from their range {rng.low:g}–{rng.high:g} to 8 bits")
    for mode, word in CONVERTED.items():
        if modes[mode]:
            notes.append(f"{modes[mode]} {word} images converted to RGB")
    if turned := sum(h.turned for h in headers):
        notes.append(f"{turned} images turned upright by their EXIF orientation")
    return notes
