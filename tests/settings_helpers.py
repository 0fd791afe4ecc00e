"""The one maker of tiny settings for tests; each caller names the values it relies on."""

from __future__ import annotations

from pathlib import Path

from engine.settings.config import Settings, load_settings


def tiny_settings(tmp_path: Path, *overrides: str, epochs: int) -> Settings:
    """Built-in defaults (digits, mlp) with runs in tmp_path/runs and `epochs` epochs; `overrides` are `--set` texts."""
    return load_settings(None, (f"run.runs_dir={str(tmp_path / 'runs')!r}", f"training.epochs={epochs}", *overrides))
