"""The console attached to a run that trains elsewhere: its history at once, then live; p and x steer it there;
leaving the console leaves it training."""

from __future__ import annotations

import threading

from textual.widgets import Static

from engine.events import EpochCompleted
from engine.runs.commands import is_running
from engine.runs.status import run_status
from engine.training.control import RunControl
from engine.training.trainer import Trainer
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.widgets.epoch_table import EpochTable


def test_a_finished_run_attached_shows_every_epoch_and_how_it_ended(tmp_path):
    settings = tiny_settings(tmp_path, epochs=4)
    trainer = Trainer(settings, set_threads=False)
    trainer.run()

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml", attach=trainer.run_dir)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: app.current_mode == "training")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            assert screen.query_one(EpochTable).row_count == 4 and screen.history.epochs == [1, 2, 3, 4]
            assert "Run finished" in str(screen.query_one("#run-status", Static).render())

    run(scenario())


def test_an_attached_console_pauses_resumes_and_stops_a_run_in_another_thread(tmp_path):
    settings = tiny_settings(tmp_path, epochs=400).replace("data.batch_size", 2)
    events: list = []
    trainer = Trainer(settings, events.append, RunControl(), set_threads=False)
    trainer.setup()
    thread = threading.Thread(target=trainer.run)
    thread.start()

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: sum(isinstance(e, EpochCompleted) for e in events) >= 2)
            await app.attach_run(trainer.run_dir)
            screen = app.screen
            assert await wait_for(pilot, lambda: len(screen.history.epochs) >= 2)  # the epochs before the attach
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "paused")
            assert run_status(trainer.run_dir).status == "paused"
            await pilot.press("p")
            assert await wait_for(pilot, lambda: screen.outcome == "running")
            shown = len(screen.history.epochs)
            assert await wait_for(pilot, lambda: len(screen.history.epochs) > shown)  # new epochs arrive live
            await pilot.press("x")
            assert await wait_for(pilot, lambda: screen.outcome == "stopped")
            assert app.run_control is None  # the run was never the console's own: quitting would not stop it

    try:
        run(scenario())
    finally:
        trainer.control.stop("test over")
        thread.join(timeout=120)
    assert not is_running(trainer.run_dir) and run_status(trainer.run_dir).status == "stopped"
    assert events[-1].reason.startswith("stopped by trainconsole stop")


def test_leaving_an_attached_console_leaves_the_run_training(tmp_path):
    settings = tiny_settings(tmp_path, epochs=400).replace("data.batch_size", 2)
    trainer = Trainer(settings, [], RunControl(), set_threads=False)
    trainer.setup()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:

        async def scenario():
            app = TrainConsole(settings, tmp_path / "settings.toml", attach=trainer.run_dir)
            async with app.run_test(size=SIZE) as pilot:
                assert await wait_for(pilot, lambda: app.current_mode == "training")
                assert await wait_for(pilot, lambda: app.screen.outcome == "running")
                await pilot.press("q")  # no question: the run is not the console's
                assert await wait_for(pilot, lambda: not app.is_running)

        run(scenario())
        assert is_running(trainer.run_dir) and not trainer.control.stop_requested
    finally:
        trainer.control.stop("test over")
        thread.join(timeout=120)
