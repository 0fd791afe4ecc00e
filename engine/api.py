"""The engine's Python API: a run recorded in its run folder, as the command line trains it.

    from engine.api import Run
    from engine.settings.config import load_settings

    final = Run(load_settings("settings.toml"), print).run()

`Run` is a `Trainer` (engine.training.trainer) with a `RunSession` (engine.runs.session): the run folder, its
lock, record, status, command channel, metrics.csv and TensorBoard writers. A bare `Trainer` keeps nothing
but the events its listeners hear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from engine.listeners import ListenerLike
from engine.outputs import run_folder_writers
from engine.runs.session import RunSession
from engine.settings.config import Settings
from engine.training.control import RunControl
from engine.training.trainer import Trainer


class Run(Trainer):
    """A Trainer that records its run in a run folder: a new one, the resumed checkpoint's, or `into`."""

    def __init__(self, settings: Settings, listeners: ListenerLike | Sequence[ListenerLike] = (),
                 control: RunControl | None = None, *, resume_from: str | Path | None = None,
                 into: str | Path | None = None, **options):
        session = RunSession(resume_from=resume_from, into=into, writers=run_folder_writers)
        super().__init__(settings, listeners, control, session=session, **options)
