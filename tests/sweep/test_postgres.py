"""A study shared through a real PostgreSQL server (started by the test on the loopback address, skipped with its
reason where none can be): Optuna's heartbeats fail the trial of a worker killed mid-trial, and the retry callback
hands its parameters to a worker still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

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
