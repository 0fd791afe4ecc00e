"""MNIST-shaped data, generated offline, written in torchvision's raw idx format.

Each class is a fixed pattern of soft blobs drawn from a shared pool (so
classes overlap), each sample that pattern shifted by up to 3 pixels, at a
random intensity, with a stray blob and noise on top. A 784-256-128-10 MLP
learns it, but not at once: validation accuracy climbs over the first epoch
or two, so time-to-accuracy means something.

    python benchmarks/mnist_files.py ROOT   # writes ROOT/MNIST/raw/*-ubyte

The files themselves are written by the tests' writer (tests/mnist_files.py), the one writer of the format.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.mnist_files import write_raw  # noqa: E402

SIZE, CLASSES, SHIFT = 28, 10, 3


def _blob(cy: float, cx: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def _class_patterns(rng: np.random.Generator) -> np.ndarray:
    pool = [_blob(*rng.uniform(8, 20, 2), rng.uniform(1.5, 2.5)) for _ in range(12)]
    patterns = np.stack([sum(pool[j] for j in rng.choice(len(pool), 4, replace=False)) for _ in range(CLASSES)])
    return (patterns / patterns.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def generate(n: int, rng: np.random.Generator, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, CLASSES, n)
    padded = np.pad(patterns, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    dy, dx = rng.integers(0, 2 * SHIFT + 1, (2, n))
    rows = dy[:, None] + np.arange(SIZE)
    cols = dx[:, None] + np.arange(SIZE)
    images = padded[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    images *= rng.uniform(0.6, 1.0, (n, 1, 1)).astype(np.float32)
    stray = rng.integers(0, CLASSES, n)  # a faint piece of another class's pattern
    images += 0.2 * padded[stray[:, None, None], rows[:, :, None], cols[:, ::-1][:, None, :]]
    images += rng.normal(0.0, 0.2, images.shape).astype(np.float32)
    return (np.clip(images, 0.0, 1.0) * 255).astype(np.uint8), labels.astype(np.uint8)


def write_mnist(root: str | Path, train: int = 60_000, test: int = 10_000, seed: int = 0) -> Path:
    """Write the four MNIST raw files under root/MNIST/raw; returns that folder."""
    rng = np.random.default_rng(seed)
    patterns = _class_patterns(rng)
    splits = [generate(n, rng, patterns) for n in (train, test)]
    return write_raw(Path(root) / "MNIST" / "raw", *splits)


if __name__ == "__main__":
    print(write_mnist(sys.argv[1]))
