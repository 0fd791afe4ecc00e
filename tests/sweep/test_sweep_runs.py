"""Sweeps on digits: pruned trials recorded, the best settings train to the reported value, a Ctrl-C'd sweep resumes
without running a trial twice, two workers share one SQLite study."""

from __future__ import annotations

import json
import signal

import pytest

from engine.api import Run
from engine.cli.dispatch import main
from engine.events import RunFinished
from engine.settings.config import load_settings
from engine.sweep.view import read_sweep
from sweep_helpers import read_jsonl, run_starts, start_sweep, sweep, sweep_file, wait_until

# a grid over six rates: the tiny rates lose to the median at epoch 1, 9.0 diverges at once
RATES = '"training.lr" = {choice = [0.01, 0.003, 0.00001, 0.000003, 9.0, 0.005]}'


def test_a_six_trial_sweep_records_pruned_trials_and_its_best_settings_train_to_its_value(tmp_path, capsys):
    path = sweep_file(tmp_path, RATES, trials=6, sweep='sampler = "grid"')  # in this process: no torch to load
    assert main(["sweep", "-c", str(path), "--json"]) == 0
    view = read_sweep(tmp_path / "runs" / "tiny")
    assert len(view.trials) == 6 and {t.state for t in view.trials} <= {"complete", "pruned"}
    pruned = {t.params["training.lr"]: t for t in view.trials if t.state == "pruned"}
    assert pruned[9.0].prune_reason == "diagnosis:diverging" and pruned[9.0].pruned_at == 1
    assert any(t.prune_reason == "pruner" for t in pruned.values())  # a tiny rate, below the median
    for t in pruned.values():  # pruned between epochs, its checkpoints kept
        assert t.epochs == t.pruned_at < 2 and (t.run_dir / "checkpoints" / "last.pth").is_file()
    finished = read_jsonl_text(capsys.readouterr().out)[-1]
    assert finished["event"] == "sweep_finished" and finished["best_trial"] == view.best_number
    best = view.best
    settings = load_settings(tmp_path / "runs" / "tiny" / "best-settings.toml")
    assert settings.training.lr == best.params["training.lr"] == 0.01
    final = Run(settings.replace("run.name", "again")).run()
    assert isinstance(final, RunFinished) and final.best_value == pytest.approx(best.value, rel=1e-4)


def read_jsonl_text(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_a_sweep_stopped_by_ctrl_c_resumes_without_running_a_finished_trial_again(tmp_path):
    path = sweep_file(tmp_path, '"training.lr" = {log_uniform = [0.003, 0.03]}', trials=2, epochs=3,
                      sweep='pruner = "none"\nsampler = "random"')
    sweep_dir = tmp_path / "runs" / "tiny"
    process = start_sweep(tmp_path, "-c", str(path))
    wait_until(lambda: read_jsonl(sweep_dir / "trial-0001" / "metrics.jsonl") or process.poll() is not None,
               "trial 1's first epoch")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    view = read_sweep(sweep_dir)
    stopped = [t for t in view.trials if t.state == "stopped"]
    assert len(stopped) == 1, view.trials  # the trial that was training: kept for its retry
    retry = view.trials[-1]
    assert (retry.state, retry.retry_of, retry.params) == ("waiting", stopped[0].number, stopped[0].params)
    finished = [t.number for t in view.trials if t.state == "complete"]

    again = sweep(tmp_path, "-c", str(path))
    assert again.returncode == 0, again.stderr
    view = read_sweep(sweep_dir)
    counted = [t for t in view.trials if t.state != "stopped"]
    assert len(counted) == 2 and {t.state for t in counted} == {"complete"}
    for number in finished:  # a finished trial never trains again
        assert len(run_starts(sweep_dir / f"trial-{number:04d}")) == 1
    continued = run_starts(view.trials[retry.number].run_dir)
    assert len(continued) == 1 and continued[0]["start_epoch"] == stopped[0].epochs  # from the stopped one's last.pth
    assert view.trials[retry.number].epochs == 3


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_without_running_a_trial_twice(tmp_path):
    path = sweep_file(tmp_path, '"training.lr" = {log_uniform = [0.003, 0.03]}', trials=4, epochs=2,
                      sweep='pruner = "none"')
    done = sweep(tmp_path, "-c", str(path), "--workers", "2", "--json")
    assert done.returncode == 0, done.stderr
    sweep_dir = tmp_path / "runs" / "tiny"
    view = read_sweep(sweep_dir)
    assert [t.number for t in view.trials] == [0, 1, 2, 3] and {t.state for t in view.trials} == {"complete"}
    folders = sorted(p.name for p in sweep_dir.glob("trial-*"))
    assert folders == ["trial-0000", "trial-0001", "trial-0002", "trial-0003"]
    assert all(len(run_starts(sweep_dir / name)) == 1 for name in folders)
    started = [e for e in read_jsonl_text(done.stdout) if e["event"] == "trial_started"]
    assert sorted(e["trial"] for e in started) == [0, 1, 2, 3]
    import optuna

    pids = {t.user_attrs["pid"] for t in optuna.load_study(study_name="tiny",
                                                           storage=f"sqlite:///{sweep_dir / 'study.db'}").trials}
    assert len(pids) == 2  # both workers trained trials
