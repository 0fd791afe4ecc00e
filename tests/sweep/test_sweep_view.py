"""read_sweep never crashes on what it finds: a damaged, foreign or missing study.db is one SweepError line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.sweep.control import prune_trial, stop_sweep
from engine.sweep.view import SweepError, read_sweep


def refused(sweep_dir: Path) -> str:
    with pytest.raises(SweepError) as caught:
        read_sweep(sweep_dir)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_missing_study_is_named(tmp_path):
    assert "no study here" in refused(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a database at all", b"SQLite format 3\x00" + b"\xff" * 3000])
def test_a_damaged_study_db_is_one_line(tmp_path, content):
    (tmp_path / "study.db").write_bytes(content)
    assert "study.db" in refused(tmp_path)


def test_a_foreign_sqlite_database_is_refused_and_left_as_it_was(tmp_path):
    db = tmp_path / "study.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table notes (text)")
    before = db.read_bytes()
    assert "study.db" in refused(tmp_path)
    assert db.read_bytes() == before  # a viewer never creates Optuna's tables in someone else's file


def test_a_link_in_place_of_the_study_is_refused(tmp_path):
    (tmp_path / "elsewhere.db").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "study.db").symlink_to(tmp_path / "elsewhere.db")
    assert "study.db" in refused(tmp_path)


def test_a_half_written_study_reads_its_trials(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    study.set_user_attr("monitor", "val_acc")
    done = study.ask()
    done.suggest_categorical("model.hidden", ["[32]", "[64, 32]"])
    done.set_user_attr("params_decoded", '{"model.hidden": [32]}')
    done.set_user_attr("run_dir", "trial-0000")
    done.report(0.5, 1)
    study.tell(done, 0.6)
    running = study.ask()
    running.set_user_attr("params_decoded", "{not json")  # someone else's attr: the raw params are shown
    running.set_user_attr("run_dir", "../../etc")  # never a path out of the sweep folder
    running.set_user_attr("epochs", -3)
    running.report(float("nan"), 1)
    view = read_sweep(tmp_path)
    assert (view.study, view.monitor, view.direction, view.best_number) == ("s", "val_acc", "maximize", 0)
    first, second = view.trials
    assert (first.state, first.params, first.value, first.run_dir) == ("complete", {"model.hidden": [32]}, 0.6,
                                                                       tmp_path / "trial-0000")
    assert (second.state, second.params, second.value, second.run_dir, second.epochs) == (
        "running", {}, None, None, 0)
    assert view.objective == ((0, 0.6, 0.6),)


def test_control_says_what_is_not_running(tmp_path):
    (tmp_path / "trial-0000").mkdir()
    with pytest.raises(SweepError, match="not running"):
        prune_trial(tmp_path / "trial-0000")
    with pytest.raises(SweepError, match="not a sweep folder"):
        stop_sweep(tmp_path)


def test_the_newest_running_run_may_be_a_sweep_s_trial(tmp_path):
    from engine.runs.detach import find_run
    from engine.runs.folder import RunLock

    sweep_dir = tmp_path / "runs" / "study"
    (sweep_dir / "trial-0003" / "checkpoints").mkdir(parents=True)
    (sweep_dir / "sweep.toml").write_text("")
    lock = RunLock(sweep_dir / "trial-0003")
    lock.acquire()  # as the trial's process holds it while it trains
    try:
        assert find_run(None, tmp_path / "runs") == sweep_dir / "trial-0003"
    finally:
        lock.release()
