"""Real tiny runs on digits, started from the training screen and polled to the end."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import Label, ProgressBar, Static

from engine.events import BatchProgressed, Diagnostic, EpochCompleted, RunPaused, RunStarted
from engine.runs.folder import to_json
from pilot_helpers import SIZE, ScreenTime, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.messages import EngineEvent
from tui.widgets.diagnostic_badge import DiagnosticBadge
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import CachedPlot, MetricChart

ENDED = ("completed", "early_stopped", "stopped", "nan", "failed")


def _status(app) -> str:
    return str(app.screen.query_one("#run-status", Static).render())


def _bar(app) -> tuple[int, int, int]:
    """The progress line's epoch, batch and batches ("epoch 3 batch 12/23"), checked against the bar itself."""
    label = str(app.screen.query_one("#epoch-label", Label).render())
    epoch, batch, batches = map(int, re.fullmatch(r"epoch (\d+) batch (\d+)/(\d+)", label).groups())
    bar = app.screen.query_one(ProgressBar)
    assert (bar.progress, bar.total) == (batch, batches), label
    return epoch, batch, batches


def _paused_position(app) -> tuple[int, int]:
    """The epoch and batch the status line says the run paused at; (N, batches) for "after epoch N"."""
    status = _status(app)
    if match := re.search(r"Paused after epoch (\d+)", status):
        return int(match[1]), app.screen.batches
    match = re.search(r"Paused in epoch (\d+) after batch (\d+)/\d+", status)
    assert match, status
    return int(match[1]), int(match[2])


def test_s_trains_a_run_to_the_end(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=3), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome in ENDED)
            assert screen.outcome == "completed", _status(app)
            assert screen.query_one(EpochTable).row_count == 3
            assert screen.query_one(DiagnosticBadge).status in ("ok", "overfitting", "underfitting", "nan")
            run_dir = next((tmp_path / "runs").iterdir())
            assert "Run finished" in _status(app) and str(run_dir) in _status(app)
            assert screen.query_one("#loss-chart", MetricChart).epochs == [1, 2, 3]
            assert await wait_for(pilot, lambda: app.run_control is None)  # the worker ends just after RunFinished

    run(scenario())


def test_a_run_that_cannot_start_leaves_the_console_usable(tmp_path):
    bad = tiny_settings(tmp_path).replace("data.path", str(tmp_path / "missing.csv")).replace("data.dataset", "csv")

    async def scenario():
        app = TrainConsole(bad, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome in ENDED)
            assert screen.outcome == "failed"
            assert "could not start" in _status(app) and "missing.csv" in _status(app)
            assert await wait_for(pilot, lambda: app.run_control is None)
            app.set_settings(tiny_settings(tmp_path, epochs=2))
            await pilot.press("s")
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            assert screen.query_one(EpochTable).row_count == 2

    run(scenario())


def test_p_pauses_and_resumes_and_x_stops_and_saves(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=500), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "running")
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "paused")
            assert _paused_position(app) == _bar(app)[:2]  # the status and the bar name the same batch
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "running")
            await pilot.press("x")
            assert await wait_for(pilot, lambda: screen.outcome in ENDED)
            assert screen.outcome == "stopped"
            assert "Run stopped" in _status(app)

    run(scenario())
    assert list(Path(tmp_path / "runs").glob("*/checkpoints/last.pth"))


def _run_started(run_dir, start_epoch: int = 0) -> RunStarted:
    settings = {"model": {"name": "mlp"}, "data": {"dataset": "digits"}}
    return RunStarted(
        str(run_dir), settings, "cpu", "x86_64", 1000, 1437, 360, 23, "in-memory", "fp32", start_epoch, 5, 1
    )


def _count_chart_draws(monkeypatch) -> list[int]:
    """The epochs in the screen's history at each redraw of its charts."""
    from tui.screens.training import TrainingScreen

    draws: list[int] = []
    original = TrainingScreen._redraw_charts
    monkeypatch.setattr(
        TrainingScreen,
        "_redraw_charts",
        lambda self, onset: (draws.append(len(self.history.epochs)), original(self, onset)),
    )
    return draws


def _epoch(epoch: int) -> EpochCompleted:
    return EpochCompleted(epoch, 5, 0.5, 0.6, 0.8, 0.7, 1e-3, 0.1, 9000.0, Diagnostic("ok", "fine"), False, None)


async def _training_screen(pilot, *events):
    """Key 3, then the events handed to the training screen as the runner hands them."""
    await pilot.press("3")
    screen = pilot.app.screen
    for event in events:
        screen.post_message(EngineEvent(event))
    return screen


def test_a_resumed_run_shows_each_epoch_once_when_the_loop_is_ahead_of_the_screen(tmp_path):
    """RunStarted reaches the screen late under load: metrics.jsonl may already hold the epoch after the resume."""
    (tmp_path / "metrics.jsonl").write_text("".join(to_json(_epoch(n).metrics()) + "\n" for n in (1, 2)))

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, _run_started(tmp_path, start_epoch=1), _epoch(2))
            await pilot.pause()
            assert screen.query_one(EpochTable).row_count == 2
            assert screen.query_one("#loss-chart", MetricChart).epochs == [1, 2]

    run(scenario())


def test_the_paused_status_and_the_progress_bar_name_the_same_point(tmp_path):
    """Progress ticks are throttled, so at a pause the bar can lag behind the batch the loop stopped at;
    and a pause at batch 0 of epoch N+1 is the end of epoch N, which the bar still shows at 100 %."""

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(
                pilot, _run_started(tmp_path), BatchProgressed(2, 23, 23, 9000.0, 0.0, 0.4), RunPaused(3, 0)
            )
            await pilot.pause()
            assert "Paused after epoch 2" in _status(app), _status(app)
            assert _bar(app) == (2, 23, 23)

            # these ticks come too soon after the last drawn one to be drawn
            for event in (
                BatchProgressed(3, 5, 23, 9000.0, 0.1, 0.3),
                BatchProgressed(3, 9, 23, 9000.0, 0.1, 0.3),
                RunPaused(3, 12),
            ):
                screen.post_message(EngineEvent(event))
                await pilot.pause()
            assert "Paused in epoch 3 after batch 12/23" in _status(app), _status(app)
            assert _bar(app) == (3, 12, 23)
            assert str(screen.query_one("#epoch-rate", Label).render()) == "paused"

    run(scenario())


def test_the_epoch_table_has_the_focus_so_arrows_scroll_it(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            assert await wait_for(pilot, lambda: isinstance(app.focused, EpochTable)), app.focused
            await pilot.press("s")  # the screen's keys still work with the table focused
            assert await wait_for(pilot, lambda: app.screen.outcome in ENDED, timeout=120)
            assert app.screen.query_one(EpochTable).row_count == 3

    run(scenario())


def test_the_epoch_table_keeps_its_drawn_cells_across_a_screen_switch(tmp_path, monkeypatch):
    """A return to the training screen restyles it; cells whose styles did not change are not drawn again."""
    drawn = []
    original = EpochTable._render_cell
    monkeypatch.setattr(EpochTable, "_render_cell", lambda self, *a, **k: drawn.append(1) or original(self, *a, **k))

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=3), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            training = app.screen
            table = training.query_one(EpochTable)
            assert await wait_for(pilot, lambda: training.outcome in ENDED and table.row_count == 3)
            drawn_back = lambda: app.screen is training and training._show_timer is None  # noqa: E731  the return's draw is done
            for key in ("1", "3", "1", "3"):
                await pilot.press(key)
                assert await wait_for(pilot, lambda: app.screen is not training if key == "1" else drawn_back())
            await pilot.pause()
            drawn.clear()
            await pilot.press("1")
            assert await wait_for(pilot, lambda: app.screen is not training)
            await pilot.press("3")
            assert await wait_for(pilot, drawn_back)
            await pilot.pause()
            assert isinstance(app.screen.focused, EpochTable)
            assert drawn == [], f"{len(drawn)} cells drawn again"

    run(scenario())


def test_epochs_that_arrive_together_are_drawn_together(tmp_path, monkeypatch):
    """Fast epochs (digits: ~20 a second) queued behind each other are drawn once, with the newest of them, by the
    time the app has handled them (no timer holds them back); one right after waits for the bar's interval; none
    is lost, and the end shows at once."""
    from engine.events import RunFinished

    import tui.screens.training as training_module

    draws = _count_chart_draws(monkeypatch)
    times = ScreenTime(monkeypatch)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, _run_started(tmp_path), *map(_epoch, range(1, 21)))
            table = screen.query_one(EpochTable)
            loss, acc = screen.query_one("#loss-chart", MetricChart), screen.query_one("#acc-chart", MetricChart)
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 20)
            await pilot.pause()  # the app has settled: the burst is on the screen, no timer fired
            assert times.pending() == [] and draws == [20], (times.pending(), draws)
            assert table.row_count == 20 and table.get_row_at(19)[0] == "20"
            assert loss.epochs == acc.epochs == list(range(1, 21))
            assert [table.get_row_at(i)[0] for i in (0, 19)] == ["1", "20"]
            screen.post_message(EngineEvent(_epoch(21)))  # within the interval of that draw: waits for it
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 21)
            assert times.pending() == [training_module.EPOCH_SHOW_INTERVAL_S] and table.row_count == 20
            times.advance(training_module.EPOCH_SHOW_INTERVAL_S)
            times.fire()
            assert await wait_for(pilot, lambda: table.row_count == 21 and loss.epochs[-1] == 21)
            assert draws == [20, 21]
            times.advance(training_module.EPOCH_SHOW_INTERVAL_S / 2)
            screen.post_message(EngineEvent(_epoch(22)))
            screen.post_message(
                EngineEvent(RunFinished("completed", "trained 22 epochs", 22, 22, 0.6, "val_loss", str(tmp_path), 3.0))
            )
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            assert table.row_count == 22, "the run's end draws what is pending without waiting"
            assert times.pending() == []
            assert "Run finished" in _status(app)

    run(scenario())


def test_the_progress_bar_is_still_while_no_run_is_active(tmp_path):
    """An indeterminate bar redraws itself 15 times a second: it moves only while a run starts."""

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=1), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            bar = app.screen.query_one(ProgressBar)
            assert bar.percentage is not None and bar.auto_refresh is None
            await pilot.press("s")
            assert await wait_for(pilot, lambda: app.screen.outcome in ENDED)
            assert bar.percentage == 1 and bar.auto_refresh is None

    run(scenario())


def test_the_info_line_follows_the_run_s_threads(tmp_path):
    from engine.events import ThreadsChanged

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, RunStarted(**{**_run_started(tmp_path).__dict__, "threads": 2}))
            info = lambda: str(screen.query_one("#run-info", Static).render())  # noqa: E731
            assert await wait_for(pilot, lambda: "fp32, 2 threads |" in info()), info()
            screen.post_message(EngineEvent(ThreadsChanged(4, 1, 2, 1.0)))
            assert await wait_for(pilot, lambda: "fp32, 1 thread (cores busy elsewhere) |" in info()), info()
            screen.post_message(EngineEvent(ThreadsChanged(9, 2, 1, 0.0)))
            assert await wait_for(pilot, lambda: "fp32, 2 threads |" in info()), info()

    run(scenario())


def test_epochs_that_arrive_while_another_screen_is_shown_are_drawn_after_the_return(tmp_path, monkeypatch):
    """Nothing is drawn for nobody; the return paints the screen as it was left, then the new epochs."""
    from engine.events import RunFinished
    import tui.screens.training as training_module
    from tui.widgets.metric_chart import CachedPlot

    times = ScreenTime(monkeypatch)  # the first frame back is looked at before the return's draw is fired
    draws, builds = _count_chart_draws(monkeypatch), []
    build = CachedPlot._build
    monkeypatch.setattr(CachedPlot, "_build", lambda self: builds.append(1) or build(self))

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, _run_started(tmp_path), _epoch(1))
            table = screen.query_one(EpochTable)
            assert await wait_for(pilot, lambda: table.row_count == 1 and len(builds) >= 2)  # both charts painted
            await pilot.press("1")
            for n in range(2, 8):
                screen.post_message(EngineEvent(_epoch(n)))
            assert await wait_for(pilot, lambda: screen.history.epochs == list(range(1, 8)))  # kept, only not drawn
            assert times.fire() == [training_module.EPOCH_SHOW_INTERVAL_S]  # when a shown screen would have drawn them
            await pilot.pause()
            assert table.row_count == 1 and draws == [1]
            builds.clear()
            await pilot.press("3")
            await pilot.pause()
            assert table.row_count == 1 and builds == [], "the first frame back is the screen as it was left"
            assert times.fire() == [training_module.RETURN_DRAW_DELAY_S]
            assert await wait_for(pilot, lambda: table.row_count == 7)
            assert draws == [1, 7]
            assert screen.query_one("#loss-chart", MetricChart).epochs == list(range(1, 8))

            await pilot.press("1")  # a run that ends unseen: its last epochs too are drawn on the return
            screen.post_message(EngineEvent(_epoch(8)))
            screen.post_message(
                EngineEvent(RunFinished("completed", "trained 8 epochs", 8, 8, 0.6, "val_loss", str(tmp_path), 3.0))
            )
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            assert table.row_count == 7
            await pilot.press("3")
            assert times.fire() == [training_module.RETURN_DRAW_DELAY_S]
            assert await wait_for(pilot, lambda: table.row_count == 8)
            assert "Run finished" in _status(app)

    run(scenario())


def test_nothing_is_drawn_before_a_return_has_painted(tmp_path, monkeypatch):
    """Neither a draw due just after the return nor an epoch that arrives then: both wait RETURN_DRAW_DELAY_S."""
    import tui.screens.training as training_module

    times = ScreenTime(monkeypatch)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, _run_started(tmp_path), _epoch(1))
            charts = list(screen.query(MetricChart))
            held = lambda: [chart.query_one(CachedPlot)._held for chart in charts]  # noqa: E731
            table = screen.query_one(EpochTable)
            assert await wait_for(pilot, lambda: table.row_count == 1)
            screen.post_message(EngineEvent(_epoch(2)))  # due EPOCH_SHOW_INTERVAL_S after the first
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 2)
            assert times.pending() == [training_module.EPOCH_SHOW_INTERVAL_S]  # the second epoch's draw
            await pilot.press("1")
            await pilot.press("3")
            assert held() == [True, True], "the charts show what they showed when the screen was left"
            times.advance(
                training_module.EPOCH_SHOW_INTERVAL_S + 0.3
            )  # epoch 2's draw falls due right after the return
            assert times.pending() == [training_module.RETURN_DRAW_DELAY_S], "the due draw waits for the return's"
            await pilot.pause()
            assert table.row_count == 1, "drawn when it fell due, right after the return"
            times.fire()
            assert await wait_for(pilot, lambda: table.row_count == 2)
            assert held() == [False, False] and charts[0].epochs == [1, 2]

            times.advance(training_module.EPOCH_SHOW_INTERVAL_S + 0.1)  # a quiet spell: the next epoch shows at once
            await pilot.press("1")
            await pilot.press("3")
            screen.post_message(EngineEvent(_epoch(3)))
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 3)
            assert table.row_count == 2, "drawn before the return's first frame"
            assert times.fire() == [training_module.RETURN_DRAW_DELAY_S]
            assert await wait_for(pilot, lambda: table.row_count == 3)

    run(scenario())


def test_the_overfitting_onset_of_an_epoch_is_a_vertical_line_on_the_loss_chart(tmp_path, monkeypatch):
    """EpochCompleted.onset_epoch (chapter 8.1) is drawn on the loss chart: a column of the onset colour and its key."""
    from tui.widgets.metric_chart import ONSET_COLOR

    times = ScreenTime(monkeypatch)

    def onset_cells(chart) -> set[tuple[int, int]]:
        """(row, column) of each plot cell drawn in the onset colour."""
        cells = set()
        for row, line in enumerate(chart.query_one(CachedPlot).render().split("\n")):
            for span in line.spans:
                color = span.style.color if hasattr(span.style, "color") else None
                if color is not None and color.triplet is not None and tuple(color.triplet) == ONSET_COLOR:
                    cells |= {(row, col) for col in range(span.start, span.end) if line.plain[col] != " "}
        return cells

    def epoch(n: int, onset: int | None) -> EpochCompleted:
        ok = Diagnostic("ok", "fine")
        return EpochCompleted(n, 8, 1 / n, 1 / n + n / 8, 0.8, 0.7, 1e-3, 0.1, 9000.0, ok, False, onset)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _training_screen(pilot, _run_started(tmp_path), *(epoch(n, None) for n in range(1, 6)))
            loss = screen.query_one("#loss-chart", MetricChart)
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 5)
            times.fire()
            assert await wait_for(pilot, lambda: loss.epochs == [1, 2, 3, 4, 5])
            await pilot.pause()
            assert loss.onset is None and onset_cells(loss) == set()
            screen.post_message(EngineEvent(epoch(6, 3)))
            assert await wait_for(pilot, lambda: len(screen.history.epochs) == 6)
            times.fire()
            assert await wait_for(pilot, lambda: loss.epochs == list(range(1, 7)))
            await pilot.pause()
            assert loss.onset == 3 and "onset 3" in str(loss.query_one(".chart-title", Static).render())
            cells = onset_cells(loss)
            assert len({col for _, col in cells}) == 1 and len(cells) >= 5, cells  # one column, most of the height

    run(scenario())


def test_the_info_line_shows_the_constant_predictor_the_badges_judge_against(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=(160, 40)) as pilot:
            started = RunStarted(**{**_run_started(tmp_path).__dict__, "baseline_loss": 2.3134, "baseline_acc": 0.086})
            screen = await _training_screen(pilot, started)
            info = lambda: str(screen.query_one("#run-info", Static).render())  # noqa: E731
            assert await wait_for(pilot, lambda: "baseline loss 2.313, acc 8.6%" in info()), info()

    run(scenario())
