"""Dataset names → loaders: the one place a built-in dataset is named. Torch-free, so the settings can check a name.

A loader is `load(settings: DataSettings, seed: int) -> Source` (engine.data.sources), imported when first used.
Any other name is `package.module:function` (engine.settings.user_code).
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN_DATASETS = {
    "digits": "engine.data.sources:load_digits",
    "mnist": "engine.data.sources:load_torchvision",
    "fashion-mnist": "engine.data.sources:load_torchvision",
    "cifar10": "engine.data.sources:load_torchvision",
    "synthetic": "engine.data.sources:load_synthetic",
    "csv": "engine.data.sources:load_csv",
    "image-folder": "engine.data.sources:load_image_folder",
}


def builtin_loader(name: str) -> Any:
    module, _, function = BUILTIN_DATASETS[name].partition(":")
    return getattr(importlib.import_module(module), function)
