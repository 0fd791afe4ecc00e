from __future__ import annotations

import gc
from pathlib import Path

import pytest

from engine.settings.config import Settings
from pilot_helpers import tiny_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return tiny_settings(tmp_path)


@pytest.fixture(autouse=True)
def _collections_as_found():
    """Each console freezes what is alive once PyTorch is ready (tui.heap.settle). In one test
    process that would keep every earlier test's garbage for good: the tests give it back."""
    yield
    gc.unfreeze()
    enabled = gc.isenabled()
    gc.enable()
    assert enabled, "the test left garbage collection off"
