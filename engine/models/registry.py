"""Model names → builders: the one place a built-in model is named. Torch-free, so that the settings can check a name.

A builder is `build(settings: ModelSettings, in_shape, num_classes) -> nn.Module`, imported when first used.
Any other name is a torchvision classifier, or `package.module:Class` (engine.settings.user_code).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

BUILTIN_MODELS = {
    "mlp": "engine.models.networks:build_mlp",
    "cnn": "engine.models.networks:build_cnn",
}


def builtin_builder(name: str) -> Any:
    module, _, function = BUILTIN_MODELS[name].partition(":")
    return getattr(importlib.import_module(module), function)


@lru_cache(maxsize=1)
def torchvision_model_names() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))
