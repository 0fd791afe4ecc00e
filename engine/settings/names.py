"""The built-in names the settings accept: the one place a built-in dataset or model is named.

Torch-free, on the settings floor, so settings check a name without importing data or models (floors above).
Each name leads to the `module:function` that makes it; engine.data.registry and engine.models.registry
import that function when it is first used. Any other name is `package.module:function` or
`package.module:Class` (engine.settings.user_code), or for a model a torchvision classifier.
"""

from __future__ import annotations

from functools import lru_cache

BUILTIN_DATASETS = {  # load(settings: DataSettings, seed: int) -> Source
    "digits": "engine.data.sources:load_digits",
    "mnist": "engine.data.sources:load_torchvision",
    "fashion-mnist": "engine.data.sources:load_torchvision",
    "cifar10": "engine.data.sources:load_torchvision",
    "synthetic": "engine.data.sources:load_synthetic",
    "csv": "engine.data.sources:load_csv",  # the same loader as table, its name since before Parquet and Feather
    "table": "engine.data.sources:load_csv",
    "image-folder": "engine.data.sources:load_image_folder",
}

AUTO = "auto"  # model.name and run.name: chosen from the dataset (engine.settings.defaults)

BUILTIN_MODELS = {  # build(settings: ModelSettings, in_shape, num_classes) -> nn.Module
    "mlp": "engine.models.networks:build_mlp",
    "cnn": "engine.models.networks:build_cnn",
}


@lru_cache(maxsize=1)
def torchvision_model_names() -> list[str]:
    """The classifiers torchvision builds by name (imported only when a name is none of ours)."""
    from torchvision import models

    return sorted(models.list_models(module=models))
