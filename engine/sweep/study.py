"""The study a sweep's workers share: its storage (with heartbeats), sampler, pruner and the values a trial draws."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from engine.settings.config import Settings
from engine.settings.sweep import Dimension, SweepSettings, direction, grid_values
from engine.sweep.storage import SweepError, default_url, describe

FINISHED = ("COMPLETE", "PRUNED")
WAIT_S = 60  # SQLite: how long a worker waits for another's write before the database counts as locked
# processes started together on an empty PostgreSQL database race to create Optuna's tables (CREATE TABLE is
# not atomic there): the losers try again and find them made
OPEN_ATTEMPTS = 5


def quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")  # we beat ourselves
    return optuna


def open_storage(sweep_dir: Path, url: str | None, sweep: SweepSettings):
    """Optuna's RDB storage with heartbeats: a trial whose worker died is failed after grace_s and retried."""
    optuna = quiet_optuna()
    url = url or default_url(sweep_dir)
    kwargs = {"connect_args": {"timeout": WAIT_S}} if url.startswith("sqlite") else {}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None, inherit_intermediate_values=True)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=sweep.heartbeat_s,
                                              grace_period=sweep.grace_s, heartbeat_stale_trial_callback=retry)
        except (IntegrityError, ProgrammingError) as e:  # lost the race to create the tables: they exist now
            if attempt == OPEN_ATTEMPTS:
                raise SweepError(f"cannot open the study's storage {shown_url(url)}: {describe(e)}") from None
        except Exception as e:
            raise SweepError(f"cannot open the study's storage {shown_url(url)}: {describe(e)}") from None


def shown_url(url: str) -> str:
    """A storage URL without its password."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if "@" in rest else url


def sampler_for(sweep: SweepSettings, seed: int, worker: int = 0):
    """Seeded by run.seed: a sweep of one process draws the same values each time; each worker draws its own."""
    optuna = quiet_optuna()
    seed_ = None if seed < 0 else seed + worker
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed_)
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler({d.name: grid_values(d) for d in sweep.space}, seed=seed_)
    return optuna.samplers.TPESampler(seed=seed_)


def pruner_for(sweep: SweepSettings):
    optuna = quiet_optuna()
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if sweep.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def create_study(storage, name: str, settings: Settings, sweep: SweepSettings):
    """The study, made or loaded; one started with another space or monitor is refused (its values would mix)."""
    optuna = quiet_optuna()
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction(settings),
                                    load_if_exists=True, sampler=sampler_for(sweep, settings.run.seed),
                                    pruner=pruner_for(sweep))
        attrs = study.user_attrs
        mine = {"monitor": settings.training.monitor, "direction": direction(settings),
                "space": json.dumps(sweep.space_table(), sort_keys=True)}
        if not attrs:
            for key, value in mine.items():
                study.set_user_attr(key, value)
            return study
    except Exception as e:
        raise SweepError(f"cannot open study {name!r}: {describe(e)}") from None
    for key, value in mine.items():
        if attrs.get(key) != value:
            raise SweepError(f"study {name!r} was started with another {key} ({attrs.get(key)!r}, now {value!r}); "
                             "name a new study with --study")
    return study


def load_study(storage, name: str, settings: Settings, sweep: SweepSettings, worker: int):
    """Worker `worker`'s handle on the study its sweep made."""
    optuna = quiet_optuna()
    try:
        return optuna.load_study(study_name=name, storage=storage,
                                 sampler=sampler_for(sweep, settings.run.seed, worker),
                                 pruner=pruner_for(sweep))
    except Exception as e:
        raise SweepError(f"cannot load study {name!r}: {describe(e)}") from None


def suggest(trial, space: tuple[Dimension, ...]) -> dict[str, Any]:
    """The trial's values, drawn by the sampler (or fixed, for a retry), decoded as the settings take them."""
    values = {}
    for d in space:
        if d.kind == "choice":
            drawn = trial.suggest_categorical(d.name, list(d.encoded_choices()))
        elif d.kind == "int":
            drawn = trial.suggest_int(d.name, d.low, d.high, step=d.step or 1)
        else:
            drawn = trial.suggest_float(d.name, d.low, d.high, log=d.kind == "log_uniform", step=d.step)
        values[d.name] = d.decode(drawn)
    return values


@contextmanager
def asking(sweep_dir: Path) -> Iterator[None]:
    """The workers of this machine take trials one at a time (the count of trials left is then exact)."""
    fd = os.open(Path(sweep_dir) / ".ask.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def next_trial(study, budget: int, sweep_dir: Path):
    """A trial to run (a waiting retry first), or None when the study holds `budget` trials that count."""
    optuna = quiet_optuna()
    from optuna.trial import TrialState

    with asking(sweep_dir):
        optuna.storages.fail_stale_trials(study)
        fail_dead_here(study)
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ()) if isinstance(n, int)}
        # a failed trial counts, unless a retry continues it (it was stopped, or its worker died)
        counted = sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))
        if counted >= budget and not waiting:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        return trial


def fail_dead_here(study) -> None:
    """Running trials of this machine whose worker is gone (killed, crashed) are failed and retried at once,
    without waiting for their heartbeat to go stale."""
    from optuna.trial import TrialState

    from engine.runs.status import process_alive

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and not process_alive(pid):
            retry_as_failed(study, t._trial_id, {"worker_died": True})


def retry_as_failed(study, trial_id: int, attrs: dict[str, Any]) -> None:
    """Fail a running trial and queue its retry, which continues from its last.pth (its params, its epochs)."""
    optuna = quiet_optuna()
    from optuna.trial import TrialState

    storage = study._storage
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    try:
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return  # another worker failed it first, and queued its retry
    except Exception:
        return  # finished meanwhile (UpdateFinishedTrialError)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None, inherit_intermediate_values=True)
    retry(study, storage.get_trial(trial_id))


def tell(study, trial, value: float | None = None, state=None) -> None:
    """Optuna's tell; the grid sampler's own stop at its last combination (meant for Study.optimize, which a
    sweep does not use) is not an error: the trial's state is stored before it, and the budget ends the sweep."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
