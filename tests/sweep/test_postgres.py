"""A study shared through a real PostgreSQL server (started by the test on the loopback address, skipped with its
reason where none can be): Optuna's heartbeats fail the trial of a worker killed mid-trial, and the retry callback
hands its parameters to a worker still alive."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# heartbeats and their retry callback are marked experimental by Optuna (5.1), which warns on each use
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

HEARTBEAT_S, GRACE_S = 1, 2  # the shortest Optuna takes (whole seconds): a dead worker's trial fails in ~2 s
DEADLINE_S = 120.0

# A worker that starts one trial, says which, then hangs in it until killed.
HANGING_WORKER = textwrap.dedent(
    """
    import sys, threading
    import optuna
    storage = optuna.storages.RDBStorage(sys.argv[1], heartbeat_interval={heartbeat}, grace_period={grace})
    study = optuna.load_study(study_name="shared", storage=storage)
    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        with open(sys.argv[2] + ".tmp", "w") as started:
            started.write(str(trial.number))
        import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        threading.Event().wait()
    study.optimize(objective, n_trials=1)
    """
).format(heartbeat=HEARTBEAT_S, grace=GRACE_S)


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)
    return result


def test_a_killed_workers_trial_is_failed_by_heartbeat_and_retried_with_its_parameters(postgres_url, tmp_path):
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    storage = optuna.storages.RDBStorage(
        postgres_url,
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    study = optuna.create_study(study_name="shared", storage=storage)
    started = tmp_path / "started"
    worker = subprocess.Popen([sys.executable, "-c", HANGING_WORKER, postgres_url, str(started)])
    try:
        killed_number = int(wait_for(lambda: started.exists() and started.read_text(), "the worker's trial"))
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
    assert study.trials[killed_number].state == TrialState.RUNNING  # a dead worker's trial stays running...

    def failed_and_requeued():
        optuna.storages.fail_stale_trials(study)  # what each worker does before it asks for its next trial
        return study.trials[killed_number].state == TrialState.FAIL

    wait_for(failed_and_requeued, "the heartbeat to fail the killed worker's trial")  # ...until its heartbeat is stale
    waiting = [trial for trial in study.trials if trial.state == TrialState.WAITING]
    assert len(waiting) == 1 and RetryHeartbeatStaleTrialCallback.retried_trial_number(waiting[0]) == killed_number
    killed_x = study.trials[killed_number].params["x"]

    ran: list[float] = []
    study.optimize(lambda trial: ran.append(trial.suggest_float("x", 0.0, 1.0)) or 0.0, n_trials=1)

    assert ran == [killed_x]  # the live worker ran the retry, with the killed trial's parameters
    retry = study.trials[-1]
    assert retry.state == TrialState.COMPLETE and retry.number != killed_number
    assert RetryHeartbeatStaleTrialCallback.retry_history(retry) == [killed_number]
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 0


TRAINCONSOLE = Path(sys.executable).parent / "trainconsole"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STUDY, TRIALS = "shared", 6
SWEEP_GRACE_S = 4  # a few beats: a live worker slowed by a busy machine is not taken for a dead one
# 3-epoch digits trials at batch size 4 (360 steps an epoch: a kill one epoch in lands mid-trial); the heartbeat as
# short as Optuna allows
SETTINGS = """\
[run]
runs_dir = "{runs}"
seed = 0
[device]
device = "cpu"
threads = 1
[data]
batch_size = 4
[training]
epochs = 3
[sweep]
trials = {trials}
pruner = "none"
prune_on_diagnosis = false
heartbeat_s = {heartbeat}
grace_s = {grace}
[sweep.space]
"training.lr" = {{log_uniform = [1e-3, 1e-1]}}
"model.hidden" = {{choice = [[32], [64]]}}
"""


def machine(tmp_path: Path, name: str) -> Path:
    """A folder standing for one machine: its own settings file and runs folder, only the study is shared."""
    home = tmp_path / name
    home.mkdir()
    settings = SETTINGS.format(runs=home / "runs", trials=TRIALS, heartbeat=HEARTBEAT_S, grace=SWEEP_GRACE_S)
    (home / "settings.toml").write_text(settings)
    return home


def another_host() -> list[str]:
    """A command prefix that runs a worker under another host name (a UTS namespace of its own), so that its
    death reaches the other worker only through the study's heartbeats, as from another machine; [] where
    namespaces are refused (the other worker then also sees the dead process id, a faster path)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    done = subprocess.run(["unshare", "--uts", "hostname", "tc-other-machine"], capture_output=True)
    if done.returncode != 0:
        return []
    return ["unshare", "--uts", "sh", "-c", 'hostname tc-other-machine && exec "$@"', "sh"]


def start_worker(home: Path, url: str, prefix: list[str]) -> subprocess.Popen:
    command = [*prefix, str(TRAINCONSOLE), "sweep", "-c", "settings.toml", "--storage", url, "--study", STUDY]
    with open(home / "sweep.log", "w") as log:  # the worker's own output, shown when it fails
        return subprocess.Popen(
            command, cwd=home, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def trial_folders(home: Path) -> dict[str, Path]:
    sweep_dir = home / "runs" / STUDY
    return {p.name: p for p in sorted(sweep_dir.glob("trial-*"))} if sweep_dir.is_dir() else {}


def epochs_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len([line for line in path.read_text().splitlines() if line.endswith("}")]) if path.exists() else 0


def one_epoch_into_a_trial(home: Path, worker: subprocess.Popen) -> Path | None:
    assert worker.poll() is None, f"the worker ended ({worker.returncode}): {(home / 'sweep.log').read_text()[-3000:]}"
    return next((p for p in trial_folders(home).values() if epochs_done(p) >= 1), None)


def test_two_sweep_processes_share_a_study_and_a_killed_ones_trial_is_retried_by_the_other(postgres_url, tmp_path):
    from engine.sweep.view import read_sweep

    first, second = machine(tmp_path, "first"), machine(tmp_path, "second")
    elsewhere = another_host()
    doomed = start_worker(first, postgres_url, elsewhere)
    survivor = start_worker(second, postgres_url, [])
    try:
        mid_trial = wait_for(lambda: one_epoch_into_a_trial(first, doomed), "the first worker to be mid-trial")
        os.killpg(doomed.pid, signal.SIGKILL)  # the machine dies: the worker and any child it started
        doomed.wait(timeout=60)
        killed_at = epochs_done(mid_trial)
        assert survivor.wait(timeout=DEADLINE_S) == 0, (second / "sweep.log").read_text()[-3000:]
    finally:
        for worker in (doomed, survivor):
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=60)

    view = read_sweep(second / "runs" / STUDY, storage=postgres_url, study=STUDY)
    rows = {row.number: row for row in view.trials}
    killed = next(row for row in view.trials if row.run_dir is not None and row.run_dir.name == mid_trial.name)
    assert killed_at < 3 and killed.state == "failed"  # failed, not finished
    if elsewhere:  # from another host only its stale heartbeat could tell the survivor that it had died
        import optuna

        attrs = optuna.load_study(study_name=STUDY, storage=postgres_url).trials[killed.number].user_attrs
        assert attrs.get("host") == "tc-other-machine" and "worker_died" not in attrs
    retries = [row for row in view.trials if row.retry_of == killed.number]
    assert [row.state for row in retries] == ["complete"]
    assert retries[0].params == killed.params  # the same point of the space, run by the survivor
    assert retries[0].run_dir.name in trial_folders(second)
    assert [row.state for row in rows.values()].count("complete") == TRIALS
    assert not any(row.state in ("running", "waiting") for row in rows.values())
    # no trial number ran twice: each trial folder was made by one machine only, and names a trial of the study
    on_first, on_second = set(trial_folders(first)), set(trial_folders(second))
    assert on_first.isdisjoint(on_second) and on_first
    expected = {row.run_dir.name for row in rows.values() if row.run_dir is not None and row.state != "waiting"}
    assert on_first | on_second == expected
