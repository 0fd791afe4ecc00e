"""Dataset names → loaders. The names live in engine.settings.names, so the settings can check one.

A loader is `load(settings: DataSettings, seed: int) -> Source` (engine.data.sources), imported when first used.
Any other name is `package.module:function` (engine.settings.user_code).
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.settings.names import BUILTIN_DATASETS

__all__ = ["BUILTIN_DATASETS", "builtin_loader"]


def builtin_loader(name: str) -> Any:
    module, _, function = BUILTIN_DATASETS[name].partition(":")
    return getattr(importlib.import_module(module), function)
