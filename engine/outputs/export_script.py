"""`trainconsole export-script`: a run as one plain PyTorch script, chapter 6.1's template filled in with its settings.

The script draws the same random numbers in the same order as the engine's plain loop (`training.accel = "off"`:
autograd, nn.Dropout): the seeded split, the shuffling generator, the model's init, the dropout masks. So on the
CPU its epoch-1 metrics are the run's. What it cannot write it refuses, in one line naming the setting
(ExportRefused). This module is the command and the script's head; its sections are written by script_data (the
data) and script_training (the model, the optimizer and the loop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection

from engine.io.atomic import atomic_write
from engine.outputs.script_data import MNIST_LIKE, ExportRefused, data_part
from engine.outputs.script_training import loop_part, model_part, training_part
from engine.runs.signatures import folder_settings, folder_signature
from engine.settings.config import Settings, SettingsError, load_settings
from engine.settings.defaults import resolve_defaults
from engine.settings.rules import is_import_path
from engine.settings.user_code import check_untrusted

__all__ = ["ExportRefused", "export_settings", "script_text", "write_script"]


def export_settings(target: str | Path, config: str | None, allowed: Collection[str] = ()) -> tuple[Settings, str]:
    """The settings to export: `config` (the user's own), else the run folder's settings.toml (its one reader)."""
    if config:
        return resolve_defaults(load_settings(config)), str(config)  # model.name = auto: the model a run builds
    path = Path(target) / "settings.toml"
    if not path.is_file():
        raise SettingsError(f"{target}: not a run folder (no settings.toml); or pass -c SETTINGS")
    settings, stored = folder_settings(path)
    signature = folder_signature(path.parent)
    return check_untrusted(settings, str(path), allowed, signature, stored=stored), str(Path(target))


def _refusals(s: Settings) -> list[str]:
    d, t = s.data, s.training
    checks = [
        (s.device.processes > 1, f"device.processes = {s.device.processes} (several processes)"),
        (t.compile, "training.compile = true (torch.compile)"),
        (d.augment, "data.augment = true"),
        (d.in_memory == "false", "data.in_memory = 'false' (the script batches tensors held in memory)"),
        (d.dataset == "image-folder", "data.dataset = 'image-folder'"),
        (is_import_path(d.dataset), f"data.dataset = '{d.dataset}' (a user dataset)"),
        (d.dataset == "csv" and d.csv_text != "error", f"data.csv_text = '{d.csv_text}'"),
        (d.dataset == "csv" and d.csv_missing != "error", f"data.csv_missing = '{d.csv_missing}'"),
        (d.dataset == "csv" and "onehot" in d.columns.values(), "data.columns with a column one-hot encoded"),
        (t.precision not in ("auto", "fp32"), f"training.precision = '{t.precision}'"),
        (":" not in s.model.name and s.model.name not in ("mlp", "cnn"), f"model.name = '{s.model.name}'"),
    ]
    return [what for refused, what in checks if refused]


def _regression(s: Settings) -> bool:
    """Whether the run trains a regression: model.task says so, or auto reads the table's label as numbers."""
    if s.model.task != "auto" or s.data.dataset not in ("csv", "table"):
        return s.model.task == "regression"
    from engine.data.sources import apply_task, load_source

    source = load_source(s.data, s.run.seed)
    return apply_task(source, "auto", s.data.label_column, s.data.csv_decimal != ".").task == "regression"


def script_text(s: Settings, source: str) -> str:
    """The script, or ExportRefused naming the first setting it cannot write."""
    refused = _refusals(s)
    if refused:
        raise ExportRefused(f"cannot export {refused[0]}: the script does not reproduce it")
    if _regression(s):
        raise ExportRefused("cannot export a regression (model.task): the script trains a classifier")
    data, in_shape = data_part(s)
    parts = [
        _header(s, source),
        _device_part(s),
        data,
        model_part(s, in_shape),
        training_part(s),
        loop_part(s),
    ]
    return "\n\n\n".join(p.strip("\n") for p in parts if p) + "\n"


def write_script(text: str, out: str | Path) -> Path:
    """Written atomically as a regular file, never through a symlink at `out`."""
    atomic_write(out, lambda fh: fh.write(text.encode("utf-8")), follow_symlinks=False)
    return Path(out)


def _header(s: Settings, source: str) -> str:
    needs = "torch, torchvision" if s.data.dataset in MNIST_LIKE else "torch"
    needs += ", scikit-learn" if s.data.dataset == "digits" else ""
    threads = f"torch.set_num_threads({s.device.threads})\n" if s.device.threads else ""
    seeding = f"SEED = {s.run.seed}\ntorch.manual_seed(SEED)" if s.run.seed >= 0 else (
        "SEED = torch.seed() % 2**63  # run.seed = -1: a new seed each run"
    )
    first = "import csv\n" if s.data.dataset == "csv" else ""  # the data's own imports, sorted as ruff wants them
    last = "from torchvision import datasets\n" if s.data.dataset in MNIST_LIKE else ""
    last += "from sklearn.datasets import load_digits\n" if s.data.dataset == "digits" else ""
    return f'''"""The chapter's training template with this run's settings, exported by trainconsole from
{source!r}.

Needs {needs}. Run `python train.py`: it writes best.pth (the model's state_dict), preprocessing.pth (the
normalisation, which `trainconsole eval` reads beside it) and history.json (the metrics of each epoch).
"""

{first}import json
import math

import torch
from torch import nn
{last}
{threads}{seeding}'''


def _device_part(s: Settings) -> str:
    if s.device.device != "auto":
        return f"# 1.3 The device: device.device = {s.device.device!r}\ndevice = torch.device({s.device.device!r})"
    return """# 1.3 The device: the best one available
if torch.cuda.is_available():
    device = torch.device("cuda")
elif torch.backends.mps.is_available():
    device = torch.device("mps")
else:
    device = torch.device("cpu")
print(f"Device: {device}")"""
