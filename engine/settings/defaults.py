"""The defaults that follow the user's choices: `model.name = "auto"` and `run.name = "auto"`.

The one place that says which model suits a dataset, and why: a run records what it chose (its settings.toml
and checkpoints hold the concrete names, so eval and resume rebuild the same model), the run's header and
the console's configuration screen show the choice and its reason.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from engine.settings.names import AUTO
from engine.settings.rules import NAME_BYTES_MAX

Settings = Any  # engine.settings.config.Settings, which imports this module (its checks judge the model auto chose)

# data.dataset -> (model, why). The chapter's MLP stays the default wherever the chapter used it (8x8 and 28x28
# grey images, where it learns in seconds an epoch); images of any other kind get the CNN, tables the MLP.
AUTO_MODELS = {
    "digits": ("mlp", "the chapter's model, for 8x8 digits"),
    "mnist": ("mlp", "the chapter's model, for MNIST"),
    "fashion-mnist": ("mlp", "the chapter's model, for 28x28 grey images"),
    "cifar10": ("cnn", "colour photos"),
    "image-folder": ("cnn", "an image folder"),
    "csv": ("mlp", "a table (CSV)"),
    "table": ("mlp", "a table (CSV, Parquet or Feather)"),
    "synthetic": ("mlp", "a table of features"),
}
# a dataset function's shape is known only once it has run; the MLP takes any (a run folder is named before that)
USER_DATASET_MODEL = ("mlp", "a dataset of your own: the MLP takes any shape; set cnn for images")

RUN_NAME_PARTS = {"image-folder": "folder"}  # the dataset's part of an auto run name, where it is not its own name


def resolve_model(settings: Settings) -> tuple[str, str]:
    """The model a run of `settings` builds, and why; the reason is empty where model.name names it."""
    if settings.model.name != AUTO:
        return settings.model.name, ""
    return AUTO_MODELS.get(settings.data.dataset, USER_DATASET_MODEL)


def model_choice(settings: Settings) -> str:
    """model.name as the user reads it: `auto → cnn (an image folder)`, or the name they set."""
    name, reason = resolve_model(settings)
    return f"{AUTO} → {name} ({reason})" if reason else name


def run_name_choice(settings: Settings) -> str:
    """run.name as the user reads it: `auto → folder-cnn`, or the name they set."""
    return f"{AUTO} → {run_name(settings)}" if settings.run.name == AUTO else settings.run.name


def run_name(settings: Settings) -> str:
    """The run folder's name: run.name, or for "auto" dataset-model (digits-mlp, folder-cnn, make_data-mlp)."""
    if settings.run.name != AUTO:
        return settings.run.name
    dataset = settings.data.dataset
    parts = (RUN_NAME_PARTS.get(dataset, dataset), resolve_model(settings)[0])
    return safe_folder_name("-".join(_last_name(part) for part in parts))


def _last_name(name: str) -> str:
    """A built-in's name, or the function or class of `package.module:name`."""
    return name.rpartition(":")[2]


def safe_folder_name(text: str) -> str:
    """`text` as a plain folder name: letters, digits, _ . - only, no leading dot, at most NAME_BYTES_MAX bytes."""
    name = re.sub(r"[^\w.-]+", "-", text).lstrip(".-")[:NAME_BYTES_MAX]
    while len(name.encode("utf-8")) > NAME_BYTES_MAX:  # \w takes letters beyond ASCII: up to 4 bytes each
        name = name[:-1]
    return name or "run"


def resolve_defaults(settings: Settings) -> Settings:
    """A copy whose run.name and model.name are concrete: what a run records and rebuilds its model from."""
    run = dataclasses.replace(settings.run, name=run_name(settings))
    model = dataclasses.replace(settings.model, name=resolve_model(settings)[0])
    return dataclasses.replace(settings, run=run, model=model)
