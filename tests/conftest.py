"""Shared fixtures: tiny settings in a temporary runs folder and tiny MNIST files in torchvision's raw format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from engine.config import Settings, load_settings
from mnist_files import write_mnist


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory: digits settings with runs_dir in tmp_path, 2 epochs, fixed seed; `overrides` are `--set` texts."""

    def make(*overrides: str) -> Settings:
        base = (
            f"run.runs_dir={str(tmp_path / 'runs')!r}",
            "run.seed=0",
            "device.device='cpu'",
            "device.threads=1",
            "training.epochs=2",
        )
        return load_settings(None, base + tuple(overrides))

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mnist_raw(tmp_path: Path) -> Path:
    """data.root with 200 train and 50 test 28x28 images in root/MNIST/raw (uncompressed idx files)."""
    root = tmp_path / "data"
    write_mnist(root, "MNIST")
    return root
