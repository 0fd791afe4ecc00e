"""Shared fixtures: tiny settings in a temporary runs folder and tiny MNIST files in torchvision's raw format."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import pytest
import torch

from engine.settings.config import Settings
from mnist_files import write_mnist
from settings_helpers import tiny_settings as make_tiny_settings

_OWN_FOLDER = pytest.StashKey[Path]()
_OWN_ENVIRONMENT = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (each xdist worker too) gets a folder of its own, set in the environment before any test
    module is imported, so that the modules' copies of os.environ made at import have it:

    - $XDG_STATE_HOME: the signing key and crash reports, never the user's (tests make keys, sign runs and crash
      on purpose);
    - $XDG_CACHE_HOME: decoded tables (engine.data.table_cache), never the user's;
    - $TMUX_TMPDIR without $TMUX: the tmux servers of the tests' sessions, never the user's nor another worker's
      (a server keeps the environment of the worker that started it and gives it to every later session).
    Subprocesses inherit them all."""
    folder = Path(tempfile.mkdtemp(prefix="tc-tests-"))  # short: a tmux socket path must fit 108 bytes
    (folder / "state").mkdir()
    (folder / "tmux").mkdir()
    (folder / "cache").mkdir()
    _OWN_ENVIRONMENT.setenv("XDG_STATE_HOME", str(folder / "state"))
    _OWN_ENVIRONMENT.setenv("XDG_CACHE_HOME", str(folder / "cache"))  # decoded tables, never the user's cache
    _OWN_ENVIRONMENT.setenv("TMUX_TMPDIR", str(folder / "tmux"))
    _OWN_ENVIRONMENT.delenv("TMUX", raising=False)
    config.stash[_OWN_FOLDER] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_OWN_FOLDER, None)
    if folder is not None:
        if shutil.which("tmux"):
            subprocess.run(["tmux", "kill-server"], capture_output=True, check=False)  # this process's server only
        _OWN_ENVIRONMENT.undo()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory: digits settings with runs_dir in tmp_path, 2 epochs, fixed seed; `overrides` are `--set` texts."""

    def make(*overrides: str) -> Settings:
        base = ("run.seed=0", "device.device='cpu'", "device.threads=1")
        return make_tiny_settings(tmp_path, *base, *overrides, epochs=2)

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


@pytest.fixture
def read_only_copy(tmp_path: Path):
    """`make(files)`: a folder holding `files` ({relative path: bytes or text}) on a tmpfs remounted read-only.

    Tests run as root, whom chmod does not stop; a read-only mount stops everyone. Skipped where mounting is refused.
    """
    mounts: list[Path] = []

    def make(files: dict[str, bytes | str]) -> Path:
        folder = tmp_path / f"read-only-{len(mounts)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"a read-only folder needs `mount -t tmpfs` (root): {done.stderr.strip() or done.returncode}")
        mounts.append(folder)
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield make
    for folder in reversed(mounts):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
