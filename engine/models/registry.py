"""Model names → builders. The names live in engine.settings.names, so the settings can check one.

A builder is `build(settings: ModelSettings, in_shape, num_classes) -> nn.Module`, imported when first used.
Any other name is a torchvision classifier, or `package.module:Class` (engine.settings.user_code).
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.settings.names import BUILTIN_MODELS, torchvision_model_names

__all__ = ["BUILTIN_MODELS", "builtin_builder", "torchvision_model_names"]


def builtin_builder(name: str) -> Any:
    module, _, function = BUILTIN_MODELS[name].partition(":")
    return getattr(importlib.import_module(module), function)
