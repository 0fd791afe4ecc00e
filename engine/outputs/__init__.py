"""What a run writes beside its own record: metrics.csv, TensorBoard scalars; and the readers and curves of
`trainconsole plot` and `view`. Each writer is a listener, added by the trainer to the run's peers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.settings.config import Settings, SettingsError

EXTRAS = {"tensorboard": "tensorboard", "matplotlib": "plot"}  # module -> the optional extra that installs it


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, needed_by: str) -> None:
    """A missing optional dependency as one settings line naming the extra that installs it."""
    if not installed(module):
        extra = EXTRAS[module]
        raise SettingsError(f"{needed_by} needs {module}: pip install 'trainconsole[{extra}]'")


def run_folder_writers(settings: Settings, run_dir: Path) -> list:
    """The writers a run folder gets: metrics.csv always, TensorBoard as [logging] tensorboard says."""
    from engine.outputs.csv_log import MetricsCsvWriter

    choice = settings.logging.tensorboard
    if choice == "true":  # before anything is written: a new run folder that fails here is removed whole
        require("tensorboard", "logging.tensorboard = true")
    writers: list = [MetricsCsvWriter(run_dir)]
    if choice == "true" or (choice == "auto" and installed("tensorboard")):
        from engine.outputs.tensorboard import TensorBoardWriter

        writers.append(TensorBoardWriter(run_dir))
    return writers
