"""The sweep screen (5): the trials of a sweep folder, the best highlighted, the objective chart, the selected trial's
curves, an unreadable study said in one line, and its keys (open, compare, stop, prune; each asks first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Static

from engine.sweep.view import SweepView, TrialRow
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.sweep import SweepScreen
from tui.widgets.metric_chart import MetricChart
from tui.widgets.objective_chart import ObjectiveChart
from tui.widgets.sweep_table import SweepTable


def _metrics(run_dir: Path, losses: list[float]) -> None:
    run_dir.mkdir(parents=True)
    lines = [json.dumps({"epoch": i + 1, "train_loss": v + 0.1, "val_loss": v}) for i, v in enumerate(losses)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def _hand_made(tmp_path: Path) -> tuple[Path, SweepView]:
    sweep = tmp_path / "runs" / "digits-sweep"
    params = {"training.lr": 0.00316, "model.hidden": [256, 128], "training.optimizer": "[red]adam\x1b[0m"}
    trials = (
        TrialRow(0, "complete", params, 0.40, 0.40, 2, None, None, sweep / "trial-0000"),
        TrialRow(1, "pruned", params, 0.90, 0.90, 1, 1, "diagnosis:diverging", sweep / "trial-0001"),
        TrialRow(2, "complete", params, 0.25, 0.25, 2, None, None, sweep / "trial-0002"),
        TrialRow(3, "running", params, 0.50, 0.50, 1, None, None, sweep / "trial-0003", retry_of=1),
    )
    for trial, losses in zip(trials, ([0.5, 0.4], [0.9], [0.3, 0.25], [0.5])):
        _metrics(trial.run_dir, losses)
    (sweep / "study.db").write_bytes(b"")
    objective = ((0, 0.40, 0.40), (2, 0.25, 0.25))
    return sweep, SweepView("digits-sweep", "val_loss", "minimize", trials, 2, objective)


@pytest.fixture
def hand_made(tmp_path, monkeypatch):
    """A sweep folder whose view is made by hand; what the screen asks the engine is recorded."""
    sweep, view = _hand_made(tmp_path)
    asked: list = []
    state = {"view": view, "error": None}

    def read_view(sweep_dir):
        asked.append(("read", Path(sweep_dir)))
        if state["error"]:
            raise ValueError(state["error"])
        return state["view"]

    monkeypatch.setattr("tui.sweep_files.read_view", read_view)
    return sweep, state, asked


def _written(sweep: Path) -> None:
    """The study written to (a trial's report): its file grows."""
    with open(sweep / "study.db", "ab") as fh:
        fh.write(b"x")


def test_the_study_is_read_again_only_once_it_was_written(tmp_path, hand_made):
    sweep, _, asked = hand_made

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.query_one(SweepTable).row_count == 4, timeout=20)
            for written in (False, True, False):
                assert await wait_for(pilot, lambda: not screen._reading, timeout=10)
                reads = len(asked)
                if written:
                    _written(sweep)
                await pilot.press("f5")
                assert await wait_for(pilot, lambda: not screen._reading, timeout=10)
                assert len(asked) == reads + written, (written, asked)

    run(scenario())


def _console(tmp_path):
    return TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")


def _status(screen) -> str:
    return str(screen.query_one("#sweep-status", Static).render())


def test_the_newest_sweep_is_shown_best_marked_with_its_chart_and_the_selected_trials_curves(tmp_path, hand_made):
    sweep, state, asked = hand_made

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            assert isinstance(screen, SweepScreen)
            table = screen.query_one(SweepTable)
            assert await wait_for(pilot, lambda: table.row_count == 4, timeout=20)
            assert screen.focused is table
            best = [str(c) for c in table.get_row("2")]
            assert best[0] == "*2" and best[1] == "complete" and best[2] == "0.2500", best
            assert [str(c) for c in table.get_row("0")][0] == " 0"
            params = table.get_row("0")[6]
            assert "lr=0.00316" in params.plain and "hidden=[256,128]" in params.plain
            assert "optimizer=[red]adam\\x1b[0m" in params.plain, "study text is shown as written, no escape code"
            assert "1 diagnosis:diverging" in str(table.get_row("1")[5])
            assert str(table.get_row("3")[1]) == "running ↻1"  # it continues trial 1
            assert "best trial 2: 0.2500" in _status(screen) and "4 trials" in _status(screen)
            objective = screen.query_one(ObjectiveChart).objective
            assert objective.complete == [(0, 0.40), (2, 0.25)] and objective.pruned == [(1, 0.90)]
            assert objective.best == [(0, 0.40), (2, 0.25)]
            chart = screen.query_one("#trial-chart", MetricChart)
            assert await wait_for(pilot, lambda: chart.series.get("val") == [0.5, 0.4], timeout=10)
            await pilot.press("down", "down")  # trial 2
            assert await wait_for(pilot, lambda: chart.series.get("val") == [0.3, 0.25], timeout=10)
            assert all(path == sweep for _, path in asked)

    run(scenario())


def test_a_study_that_cannot_be_read_is_one_line_and_the_last_view_stays(tmp_path, hand_made):
    sweep, state, _ = hand_made

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            table = screen.query_one(SweepTable)
            assert await wait_for(pilot, lambda: table.row_count == 4, timeout=20)
            state["error"] = "runs/digits-sweep/study.db: not an Optuna study (no table 'trials')\nsecond line"
            _written(sweep)
            assert await wait_for(pilot, lambda: "not an Optuna study" in _status(screen), timeout=10)
            assert "second line" not in _status(screen)
            assert table.row_count == 4
            state["error"] = None
            _written(sweep)
            assert await wait_for(pilot, lambda: "not an Optuna study" not in _status(screen), timeout=10)

    run(scenario())


def test_no_sweep_yet_says_how_to_start_one(tmp_path):
    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            assert await wait_for(pilot, lambda: "No sweep in" in _status(screen), timeout=20)
            assert screen.query_one(SweepTable).row_count == 0
            for key in ("s", "t", "p", "c", "enter"):  # each says why it does nothing; none raises
                await pilot.press(key)
            assert isinstance(app.screen, SweepScreen)

    run(scenario())


def test_stop_prune_and_stop_sweep_ask_first_then_call_the_engine(tmp_path, hand_made, monkeypatch):
    sweep, _, _ = hand_made
    sent: list = []
    monkeypatch.setattr("tui.screens.sweep.send_control", lambda name, path: sent.append((name, Path(path))))

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            table = screen.query_one(SweepTable)
            assert await wait_for(pilot, lambda: table.row_count == 4, timeout=20)
            await pilot.press("t")  # trial 0 is complete: nothing to stop, nothing asked
            assert isinstance(app.screen, SweepScreen)
            await pilot.press("down", "down", "down")  # trial 3, running
            await pilot.press("p")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.press("p")
            await pilot.press("y")
            assert await wait_for(pilot, lambda: sent == [("prune_trial", sweep / "trial-0003")], timeout=10)
            await pilot.press("t", "y")
            assert await wait_for(pilot, lambda: sent[-1] == ("stop_trial", sweep / "trial-0003"), timeout=10)
            await pilot.press("s", "y")
            assert await wait_for(pilot, lambda: sent[-1] == ("stop_sweep", sweep), timeout=10)
            assert len(sent) == 3

    run(scenario())


def test_compare_shows_the_best_trials_and_enter_opens_one_on_the_training_screen(tmp_path, hand_made, monkeypatch):
    sweep, _, _ = hand_made
    opened: list = []

    async def attach_run(run_dir):
        opened.append(Path(run_dir))

    async def scenario():
        app = _console(tmp_path)
        monkeypatch.setattr(app, "attach_run", attach_run)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            table = screen.query_one(SweepTable)
            assert await wait_for(pilot, lambda: table.row_count == 4, timeout=20)
            await pilot.press("c")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), timeout=10)
            # complete trials first, best first; then the others by their best value
            assert app.screen.run_dirs == [sweep / f"trial-000{n}" for n in (2, 0, 3, 1)]
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: app.screen is screen)
            await pilot.press("down", "enter")
            assert await wait_for(pilot, lambda: opened == [sweep / "trial-0001"], timeout=10)

    run(scenario())


def _optuna_study(sweep: Path) -> None:
    """A study.db as the sweep writes one (the contract's user attrs): trial 0 complete, 1 pruned, 2 running."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep.mkdir(parents=True)
    (sweep / "sweep.toml").write_text("")
    storage = f"sqlite:///{sweep / 'study.db'}"
    study = optuna.create_study(study_name=sweep.name, storage=storage, direction="minimize")
    study.set_user_attr("monitor", "val_loss")
    space = {"training.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for number, (losses, end) in enumerate((([0.5, 0.4], "complete"), ([0.9], "pruned"), ([0.6], None))):
        trial = study.ask(space)
        name = f"trial-{number:04d}"
        _metrics(sweep / name, losses)
        trial.set_user_attr("run_dir", name)
        trial.set_user_attr("epochs", len(losses))
        trial.set_user_attr("params_decoded", json.dumps({"training.lr": trial.params["training.lr"]}))
        for epoch, loss in enumerate(losses, 1):
            trial.report(loss, epoch)
        if end == "pruned":
            trial.set_user_attr("pruned_at", 1)
            trial.set_user_attr("prune_reason", "pruner")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif end == "complete":
            study.tell(trial, losses[-1])


def test_a_study_written_by_optuna_is_read_and_a_damaged_one_is_one_line(tmp_path):
    """The engine's own reader (engine.sweep.view), on a study.db made with Optuna, then on one overwritten."""
    sweep = tmp_path / "runs" / "digits-sweep"
    _optuna_study(sweep)

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            table = screen.query_one(SweepTable)
            assert await wait_for(pilot, lambda: table.row_count == 3, timeout=30)
            assert [str(table.get_row(str(n))[1]) for n in range(3)] == ["complete", "pruned", "running"]
            assert str(table.get_row("0")[0]) == "*0" and "1 pruner" in str(table.get_row("1")[5])
            assert "best trial 0: 0.4000" in _status(screen)
            chart = screen.query_one("#trial-chart", MetricChart)
            assert await wait_for(pilot, lambda: chart.series.get("val") == [0.5, 0.4], timeout=10)
            (sweep / "study.db").write_bytes(b"half a page of something else")
            assert await wait_for(pilot, lambda: "not a SQLite database" in _status(screen), timeout=10)
            assert table.row_count == 3, "the last good view stays while the study cannot be read"

    run(scenario())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_the_footer_fits_and_the_help_lists_every_key(tmp_path, hand_made, size):
    from test_layout_80x24 import _assert_footer_fits, _footer_keys

    from tui.screens.help import help_text

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=size) as pilot:
            await pilot.press("5")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.query_one(SweepTable).row_count == 4, timeout=20)
            assert await wait_for(pilot, lambda: len(_footer_keys(screen)) >= 2)
            await pilot.pause()
            _assert_footer_fits(screen, size[0])
            shown = [k.render().plain for k in _footer_keys(screen)]
            assert " a Open " in shown and " c Compare " in shown, shown
            tabs = screen.query_one("#tab-sweep")
            assert tabs.region.right <= size[0]

    run(scenario())
    listed = help_text(TrainConsole.BINDINGS)
    for key in ("`a`", "`c`", "`t`", "`p`", "`s`", "`o`", "`f5`"):
        assert f"| {key} | sweep: " in listed, key


def test_n_starts_a_sweep_of_the_saved_settings_file_and_shows_it(tmp_path, hand_made, monkeypatch):
    sweep, _, _ = hand_made
    other = tmp_path / "runs" / "other-sweep"
    started: list = []

    def start_sweep(settings_path):
        started.append(Path(settings_path))
        return other, 4242

    monkeypatch.setattr("tui.screens.sweep.start_sweep", start_sweep)

    async def scenario():
        app = _console(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.sweep_dir == sweep, timeout=20)
            saved = app.settings
            app.set_settings(saved.replace("training.epochs", 9))  # edited on screen 2, not saved
            await pilot.press("n")
            assert isinstance(app.screen, SweepScreen) and started == []
            app.set_settings(saved)
            await pilot.press("n")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            assert await wait_for(pilot, lambda: screen.chosen == other, timeout=10)
            assert started == [tmp_path / "settings.toml"]

    run(scenario())


def test_attach_to_a_sweep_folder_opens_the_sweep_screen_on_that_sweep(tmp_path, hand_made):
    """`trainconsole attach runs/STUDY`: the sweep screen follows that folder, not the newest sweep."""
    sweep, _, asked = hand_made
    newer = tmp_path / "runs" / "newer-sweep"
    newer.mkdir()
    (newer / "study.db").write_bytes(b"")
    (sweep / "sweep.toml").write_text("[sweep]\ntrials = 4\n")

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml", attach=sweep)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), timeout=20)
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.query_one(SweepTable).row_count == 4, timeout=20)
            assert await wait_for(pilot, lambda: screen.sweep_dir == sweep and not screen._reading, timeout=20)
            assert asked[-1] == ("read", sweep)  # the screen's first poll may read the newest before it follows

    run(scenario())
