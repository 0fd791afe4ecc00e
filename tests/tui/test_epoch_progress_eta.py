"""The training screen's progress bar shows the run's time left, the epoch's beside it."""

from __future__ import annotations

from textual.widgets import Label

from engine.events import BatchProgressed, RunStarted
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.messages import EngineEvent


def _rate(app) -> str:
    return str(app.screen.query_one("#epoch-rate", Label).render())


def _run_started(run_dir) -> RunStarted:
    settings = {"model": {"name": "mlp"}, "data": {"dataset": "digits"}}
    return RunStarted(str(run_dir), settings, "cpu", "x86_64", 1000, 1437, 360, 23, "in-memory", "fp32", 0, 5, 1)


def test_the_bar_shows_the_run_eta_and_the_epoch_eta(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            screen = app.screen
            # each tick is an epoch's last batch, which is always drawn (the others are thinned to 4 a second)
            ticks = (
                (BatchProgressed(2, 23, 23, 9000.0, 0.0, 0.4, 130.0, False), "9,000/s  run 2:10 · epoch 0:00"),
                (BatchProgressed(3, 23, 23, 8000.0, 0.0, 0.4, 65.0, True), "8,000/s  run ≤1:05 · epoch 0:00"),
                (BatchProgressed(4, 23, 23, 7000.0, 0.0, 0.4), "7,000 samples/s  ETA 0:00"),  # an older version's
            )
            screen.post_message(EngineEvent(_run_started(tmp_path)))
            for tick, shown in ticks:
                screen.post_message(EngineEvent(tick))
                assert await wait_for(pilot, lambda: _rate(app) == shown), (_rate(app), shown)

    run(scenario())


def test_a_real_run_shows_its_run_eta(tmp_path, monkeypatch):
    """Every text the bar showed is kept: a tiny run may end before a test could look at the bar mid-run."""
    from tui.widgets.epoch_progress import EpochProgress

    shown: list[str] = []
    show = EpochProgress.show

    def recording(self, event) -> None:
        show(self, event)
        shown.append(str(self.query_one("#epoch-rate", Label).render()))

    monkeypatch.setattr(EpochProgress, "show", recording)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=3), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "s")
            assert await wait_for(pilot, lambda: app.screen.outcome == "completed", timeout=300)
            assert any(" run " in text for text in shown), shown

    run(scenario())
