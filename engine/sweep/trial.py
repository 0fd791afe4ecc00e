"""One trial: an ordinary run folder `trial-NNNN/` trained as `trainconsole run` trains, reported to Optuna.

Every epoch's monitored value is reported; between epochs the trial is pruned (a cooperative stop at the epoch's
end, its checkpoints kept) when the user asked (control.prune_trial), when its diagnostic says DIVERGING, NaN or
NOT LEARNING, or when the pruner says so, each recorded with its prune_reason.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from engine.events import EpochCompleted, RunFailed, RunFinished
from engine.runs.commands import open_channel
from engine.settings.config import SettingsError
from engine.settings.sweep import SweepSettings, apply_values
from engine.sweep.control import take_prune_request
from engine.sweep.study import quiet_optuna, retry_as_failed, suggest, tell
from engine.training.control import RunControl

DIAGNOSES = ("diverging", "nan", "not_learning")
Say = Callable[[dict[str, Any]], None]


class LinkedControl(RunControl):
    """A trial's control: its own stop (a prune, `trainconsole stop` on the trial) or its sweep's."""

    def __init__(self, sweep: RunControl) -> None:
        super().__init__()
        self.sweep = sweep

    @property
    def stop_requested(self) -> bool:
        if self.sweep.stop_requested and not self._stop.is_set():
            self.stop(self.sweep.reason or "the sweep was stopped")
        return self._stop.is_set()

    @property
    def paused(self) -> bool:  # `trainconsole pause` on the sweep pauses its running trial too
        return not self.stop_requested and (not self._running.is_set() or self.sweep.paused)

    def wait_while_paused(self, timeout: float = 0.2) -> None:
        (self.sweep if self.sweep.paused else super()).wait_while_paused(timeout)


class TrialListener:
    """Hears one trial's run: reports each epoch, and decides whether it is pruned at the epoch's end."""

    def __init__(self, trial, monitor: str, sweep: SweepSettings, control: RunControl, run_dir: Path, say: Say):
        self.trial, self.monitor, self.sweep, self.control, self.run_dir, self.say = (
            trial, monitor, sweep, control, run_dir, say)
        self.pruned: tuple[int, str] | None = None
        self.last_value: float | None = None

    def on_event(self, event) -> None:
        if isinstance(event, EpochCompleted):
            self._epoch(event)

    def _epoch(self, e: EpochCompleted) -> None:
        value = getattr(e, self.monitor)
        finite = isinstance(value, float) and math.isfinite(value)
        if finite:
            self.trial.report(value, e.epoch)
            self.last_value = value
        self.trial.set_user_attr("epochs", e.epoch)
        self.say({"event": "trial_epoch", "trial": self.trial.number, "epoch": e.epoch, "epochs": e.epochs,
                  "monitor": self.monitor, "value": value if finite else None, "diagnostic": e.diagnostic.status})
        if self.pruned is None:
            reason = self._verdict(e.diagnostic.status if finite else "nan")
            if reason is not None:
                self.pruned = (e.epoch, reason)
                self.control.stop(f"pruned at epoch {e.epoch} ({reason})")

    def _verdict(self, status: str) -> str | None:
        if take_prune_request(self.run_dir):
            return "user"
        if status in DIAGNOSES and (self.sweep.prune_on_diagnosis or status == "nan"):
            return f"diagnosis:{status}"
        return "pruner" if self.trial.should_prune() else None

    def close(self) -> None:
        pass


class Heartbeat:
    """The trial's heartbeat in the study while it runs: a worker that dies stops beating, and its trial is retried."""

    def __init__(self, storage, trial_id: int, interval_s: float) -> None:
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trainconsole-trial-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:
                pass  # a busy database: the next beat comes before the grace period ends

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return Path(sweep_dir) / f"trial-{number:04d}"


def run_trial(study, trial, base, sweep: SweepSettings, sweep_dir: Path, sweep_control: RunControl, say: Say,
              threads: int = 0) -> str:
    """Train the trial to its end; its state as the view names it (complete, pruned, failed, stopped)."""
    values = suggest(trial, sweep.space)
    run_dir = trial_dir(sweep_dir, trial.number)
    for key, value in (("run_dir", run_dir.name), ("params_decoded", json.dumps(values)), ("stopped", False),
                       ("epochs", 0)):
        trial.set_user_attr(key, value)
    system = study._storage.get_trial(trial._trial_id).system_attrs  # where a retry's earlier tries are named
    resume_from = continue_from(system, sweep_dir, run_dir)
    say({"event": "trial_started", "trial": trial.number, "run_dir": str(run_dir), "params": values,
         "continues": retried_from(system)})
    fixed = {"run.runs_dir": str(Path(sweep_dir).absolute()), "run.name": run_dir.name}
    if threads and base.device.threads == 0:
        fixed["device.threads"] = threads
    try:
        settings = apply_values(base, {**values, **fixed}, f"trial {trial.number}")
    except SettingsError as e:
        return _failed(study, trial, run_dir, str(e), say)
    control = LinkedControl(sweep_control)
    listener = TrialListener(trial, settings.training.monitor, sweep, control, run_dir, say)
    final = _train(study, trial, settings, control, listener, run_dir, resume_from, sweep.heartbeat_s)
    return _record(study, trial, final, listener, sweep_control, run_dir, say)


def _train(study, trial, settings, control, listener, run_dir: Path, resume_from: Path | None, beat_s: int):
    from engine.api import Run

    if resume_from is None:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        open_channel(run_dir)
    run = Run(settings, [listener], control, resume_from=resume_from, into=None if resume_from else run_dir)
    with Heartbeat(study._storage, trial._trial_id, beat_s):
        try:
            return run.run()
        except Exception as e:  # set-up: bad data, a checkpoint that does not load, ...
            return RunFailed(f"{type(e).__name__}: {e}", type(e).__name__, "", str(run_dir), 0)


def _record(study, trial, final, listener: TrialListener, sweep_control: RunControl, run_dir: Path, say: Say) -> str:
    optuna = quiet_optuna()
    if isinstance(final, RunFailed):
        return _failed(study, trial, run_dir, final.error, say)
    assert isinstance(final, RunFinished)
    pruned = listener.pruned or ((final.epochs_completed, "diagnosis:nan") if final.status == "nan" else None)
    if pruned is None and final.status == "stopped":
        if sweep_control.stop_requested:  # continued from its last.pth by its retry when the sweep runs again
            retry_as_failed(study, trial._trial_id, {"stopped": True})
            return _said(say, trial, "stopped", listener.last_value, final.epochs_completed, run_dir)
        pruned = (final.epochs_completed, "user")  # `trainconsole stop` on this trial alone: it ends here
    if pruned is not None:
        trial.set_user_attr("pruned_at", pruned[0])
        trial.set_user_attr("prune_reason", pruned[1])
        tell(study, trial, state=optuna.trial.TrialState.PRUNED)
        return _said(say, trial, "pruned", listener.last_value, final.epochs_completed, run_dir, *pruned)
    value = final.best_value if final.best_value is not None else listener.last_value
    if value is None or not math.isfinite(value):
        return _failed(study, trial, run_dir, f"no finite {final.monitor} to report", say)
    tell(study, trial, value)
    return _said(say, trial, "complete", value, final.epochs_completed, run_dir)


def _failed(study, trial, run_dir: Path, error: str, say: Say) -> str:
    optuna = quiet_optuna()
    trial.set_user_attr("error", error[:500])
    tell(study, trial, state=optuna.trial.TrialState.FAIL)
    say({"event": "trial_error", "trial": trial.number, "error": error[:500]})
    return _said(say, trial, "failed", None, 0, run_dir)


def _said(say: Say, trial, state: str, value, epochs: int, run_dir: Path, pruned_at=None, reason=None) -> str:
    say({"event": "trial_finished", "trial": trial.number, "state": state, "value": value, "epochs": epochs,
         "pruned_at": pruned_at, "prune_reason": reason, "run_dir": str(run_dir)})
    return state


def retried_from(system: dict[str, Any]) -> int | None:
    number = system.get("failed_trial")
    return number if isinstance(number, int) else None


def continue_from(system: dict[str, Any], sweep_dir: Path, run_dir: Path) -> Path | None:
    """A retry continues from the newest last.pth of the trials it retries, copied into its own folder."""
    history = system.get("retry_history")
    earlier = [n for n in history if isinstance(n, int)] if isinstance(history, list) else []
    for number in reversed(earlier):
        source = trial_dir(sweep_dir, number) / "checkpoints" / "last.pth"
        if source.is_file() and not source.is_symlink():
            target = run_dir / "checkpoints" / "last.pth"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            return target
    return None
