from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Settings
from pilot_helpers import tiny_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return tiny_settings(tmp_path)
