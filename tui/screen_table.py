"""The console's screens, in one table: the app's modes, the number keys, the tabs, the command palette and the help
all read it. A new screen is one row here and its module under tui/screens/ (its keys: its own BINDINGS, with a tooltip
for the help)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from textual.screen import Screen


@dataclass(frozen=True)
class ScreenEntry:
    mode: str  # the app's mode name
    key: str  # the key that shows it, everywhere
    title: str  # its tab
    short: str  # its footer label
    summary: str  # what it shows, for the help and the command palette
    cls: str  # "module:Class", imported when first shown (only the first screen is built at start)

    def build(self) -> Screen:
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)()

    def screen_class(self) -> type[Screen]:
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)


SCREENS = (
    ScreenEntry(
        "environment",
        "1",
        "Environment",
        "Env",
        "Python, PyTorch, CUDA/MPS, GPUs, the device to train on",
        "tui.screens.environment:EnvironmentScreen",
    ),
    ScreenEntry(
        "configuration",
        "2",
        "Configuration",
        "Config",
        "every setting, validated as you type; saved to settings.toml",
        "tui.screens.configuration:ConfigurationScreen",
    ),
    ScreenEntry(
        "training",
        "3",
        "Training",
        "Train",
        "start, pause, stop; charts, progress, epoch table, diagnostic badge",
        "tui.screens.training:TrainingScreen",
    ),
    ScreenEntry(
        "checkpoints",
        "4",
        "Checkpoints",
        "Checkpoints",
        "runs and their checkpoints: resume, evaluate, delete",
        "tui.screens.checkpoints:CheckpointsScreen",
    ),
    ScreenEntry(
        "sweep",
        "5",
        "Sweep",
        "Sweep",
        "a sweep's trials: objective by trial, best so far; stop, prune, open, compare",
        "tui.screens.sweep:SweepScreen",
    ),
)
