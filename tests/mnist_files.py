"""Tiny datasets in torchvision's MNIST raw format, written by the tests (no download here)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_images(images: np.ndarray) -> bytes:
    """torchvision's MNIST raw format for images: magic 2051, count, rows, cols, then uint8 pixels."""
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """torchvision's MNIST raw format for labels: magic 2049, count, then uint8 labels."""
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def learnable_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose label k is a bright bar on row 2 + 2k, with noise: easy to learn, not trivial."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, k in enumerate(labels):
        images[i, 2 + 2 * k, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_raw(raw: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Path:
    """The four files of a torchvision MNIST raw folder from each split's (images, labels); the benchmark's too."""
    raw.mkdir(parents=True, exist_ok=True)
    for (images, labels), (image_file, label_file) in zip((train, test), (MNIST_FILES[:2], MNIST_FILES[2:])):
        (raw / image_file).write_bytes(idx_images(images))
        (raw / label_file).write_bytes(idx_labels(labels))
    return raw


def write_mnist(root: Path, folder: str = "MNIST", train: int = 200, test: int = 50) -> Path:
    return write_raw(root / folder / "raw", learnable_digits(train, seed=1), learnable_digits(test, seed=2))
