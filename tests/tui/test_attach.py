"""The console attached to a run that trains elsewhere: its history at once, then live; p and x steer it there;
leaving the console leaves it training."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from textual.widgets import Static

from engine.events import EpochCompleted
from engine.runs.commands import is_running
from engine.runs.folder import read_jsonl
from engine.runs.status import run_status
from engine.training.control import RunControl
from engine.api import Run
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.widgets.epoch_table import EpochTable
from tui.widgets.metric_chart import MetricChart


def check_attached_when_finished(settings, tmp_path: Path, run_dir: Path, check) -> None:
    """A console started attached to a finished run; `check(screen)` once its training screen shows the end."""

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml", attach=run_dir)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: app.current_mode == "training")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            check(screen)

    run(scenario())


def test_a_finished_run_attached_shows_every_epoch_and_how_it_ended(tmp_path):
    settings = tiny_settings(tmp_path, epochs=4)
    trainer = Run(settings, set_threads=False)
    trainer.run()

    def check(screen) -> None:
        assert screen.query_one(EpochTable).row_count == 4 and screen.history.epochs == [1, 2, 3, 4]
        assert "Run finished" in str(screen.query_one("#run-status", Static).render())

    check_attached_when_finished(settings, tmp_path, trainer.run_dir, check)


def _lengthened(run_dir: Path, epochs: int) -> None:
    """A finished run's history made `epochs` long: its last epoch's records repeated with the numbers and losses of
    each new epoch (training that many epochs would take the test minutes)."""
    events = list(read_jsonl(run_dir / "events.jsonl"))
    rows = list(read_jsonl(run_dir / "metrics.jsonl"))
    last_epoch = [e for e in events if e["type"] == "EpochCompleted"][-1]
    started = next(e for e in events if e["type"] == "RunStarted")
    finished = {**events[-1], "epochs_completed": epochs, "best_epoch": epochs}
    losses = [{"epoch": n, "train_loss": 1 / n, "val_loss": 1.5 / n} for n in range(1, epochs + 1)]
    lines = [started, *({**last_epoch, **loss, "epochs": epochs} for loss in losses), finished]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    records = "".join(json.dumps({**rows[-1], **loss}) + "\n" for loss in losses)
    (run_dir / "metrics.jsonl").write_text(records, encoding="utf-8")


def test_a_long_history_attached_holds_every_epoch_and_shows_the_last(tmp_path):
    settings = tiny_settings(tmp_path, epochs=3)
    trainer = Run(settings, set_threads=False)
    trainer.run()
    epochs = 1_200
    _lengthened(trainer.run_dir, epochs)

    def shown(table: EpochTable) -> list[str]:
        return [str(table.render_line(y).text).split()[:1] for y in range(table.size.height)]

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await app.attach_run(trainer.run_dir)
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            table = screen.query_one(EpochTable)
            await pilot.pause()
            assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [str(n) for n in range(1, epochs + 1)]
            assert table.get_row(str(epochs))[1] == f"{1 / epochs:.4f}"
            assert table.cursor_row == epochs - 1 and table.scroll_y == table.max_scroll_y > 0
            assert [str(epochs)] in shown(table)  # the newest epoch is on the screen
            assert screen.history.epochs == list(range(1, epochs + 1))
            assert screen.query_one("#loss-chart", MetricChart).epochs == list(range(1, epochs + 1))
            await pilot.press("ctrl+home")  # scrolling up reaches the first epoch
            await pilot.pause()
            assert table.cursor_row == 0 and ["1"] in shown(table)

    run(scenario())


def test_an_attached_console_pauses_resumes_and_stops_a_run_in_another_thread(tmp_path):
    settings = tiny_settings(tmp_path, epochs=400).replace("data.batch_size", 2)
    events: list = []
    trainer = Run(settings, events.append, RunControl(), set_threads=False)
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
    assert events[-1].reason.startswith("stopped from an attached console")  # not "by trainconsole stop"


def test_leaving_an_attached_console_leaves_the_run_training(tmp_path):
    settings = tiny_settings(tmp_path, epochs=400).replace("data.batch_size", 2)
    trainer = Run(settings, [], RunControl(), set_threads=False)
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


def test_a_distributed_run_attached_shows_its_processes(tmp_path):
    settings = tiny_settings(tmp_path, epochs=2)
    trainer = Run(settings, set_threads=False)
    trainer.run()
    events = [json.loads(line) for line in (trainer.run_dir / "events.jsonl").read_text().splitlines()]
    for e in events:  # as rank 0 of a 2-process run records it
        if e["type"] == "RunStarted":
            e.update(processes=2, threads=1)
    (trainer.run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    def check(screen) -> None:
        assert "2 processes (DDP) x 1 thread" in str(screen.query_one("#run-info", Static).render())

    check_attached_when_finished(settings, tmp_path, trainer.run_dir, check)


def test_starting_a_run_of_several_processes_starts_it_detached(tmp_path, monkeypatch):
    import engine.runs.detach as detach

    started = []

    def fake_start(settings, settings_path):
        started.append(settings.device.processes)
        raise OSError("not in this test")  # the console says it in one line and stays

    monkeypatch.setattr(detach, "start_detached_run", fake_start)
    settings = tiny_settings(tmp_path, epochs=2).replace("device.processes", 2)

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            assert await wait_for(pilot, lambda: app.current_mode == "training")
            await pilot.press("s")
            assert await wait_for(pilot, lambda: started == [2])
            assert not app.screen.runner.active  # nothing trains in the console's own process

    run(scenario())


def test_the_attached_line_names_the_run_before_its_long_folder():
    """A long runs folder (a test's tmp path, a cluster's scratch) pushed the run's name past an 80-column edge."""
    from tui.screens.training import TrainingScreen

    deep = Path("/scratch/" + "x" * 90 + "/runs/digits-mlp")
    line = TrainingScreen._attached_to(deep, " (q leaves it training)").plain
    assert line.startswith("Attached to digits-mlp in /scratch/") and line.endswith("/runs (q leaves it training)")
