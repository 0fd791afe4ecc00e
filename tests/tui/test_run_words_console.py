"""The console's words for what happened (issue 25): a run attached after it ended shows its end, not a busy bar;
the checkpoints screen's two tables are titled, the focused one marked, and e and delete act on its row."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Label, ProgressBar, Static

from engine.api import Run
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.screens.confirm import ConfirmScreen


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A folder with one finished 2-epoch run, shared by the tests here (they only read it)."""
    tmp_path = tmp_path_factory.mktemp("one-run")
    trainer = Run(tiny_settings(tmp_path, epochs=2), set_threads=False)
    trainer.run()
    return tmp_path, trainer.run_dir


def test_a_finished_run_attached_shows_a_still_bar_and_how_it_ended(one_run):
    tmp_path, run_dir = one_run

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=2), tmp_path / "settings.toml", attach=run_dir)
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: app.current_mode == "training")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.outcome == "completed")
            await pilot.pause()
            bar = screen.query_one(ProgressBar)
            assert bar.total is not None, "an indeterminate (busy) bar for a run that has ended"
            assert bar.percentage == 1
            assert str(screen.query_one("#epoch-rate", Label).render()) == "finished"
            assert str(screen.query_one("#epoch-label", Label).render()).startswith("epoch 2")  # its last batch
            assert "Run finished" in str(screen.query_one("#run-status", Static).render())

    run(scenario())


def _keys(screen) -> dict[str, str]:
    return {key: active.binding.description for key, active in screen.active_bindings.items()}


def test_the_two_tables_are_titled_and_the_keys_act_on_the_focused_ones_row(one_run):
    tmp_path, run_dir = one_run

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path, epochs=2), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            runs, ckpts = screen.query_one("#runs", DataTable), screen.query_one("#ckpts", DataTable)
            assert await wait_for(pilot, lambda: runs.row_count == 1 and ckpts.row_count == 2, timeout=10)
            assert str(runs.border_title) == f"Runs: 1 in {tmp_path / 'runs'}"  # and no status line of its own
            assert str(ckpts.border_title) == f"Checkpoints of {tmp_path / 'runs' / run_dir.name}"
            assert screen.focused is runs
            assert (_keys(screen)["e"], _keys(screen)["delete"]) == ("Eval run", "Delete run")
            top = lambda table: table.styles.border_top  # noqa: E731 - the focused one's line is heavy
            assert top(runs)[0] == "heavy" and top(ckpts)[0] != "heavy"

            await pilot.press("tab")  # the checkpoints table
            assert screen.focused is ckpts
            await pilot.pause()
            assert (_keys(screen)["e"], _keys(screen)["delete"]) == ("Eval ckpt", "Delete ckpt")
            assert top(ckpts)[0] == "heavy" and top(runs)[0] != "heavy"
            await pilot.press("down")  # last.pth
            await pilot.press("delete")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
            asked = str(app.screen.query_one("#question", Static).render())
            assert asked.startswith("Delete checkpoint ") and asked.endswith("checkpoints/last.pth?")
            await pilot.press("n")
            assert (run_dir / "checkpoints" / "last.pth").exists()

            await pilot.press("e")  # evaluates the checkpoint, not the run's best.pth
            details = screen.query_one("#ck-details", Static)
            assert await wait_for(pilot, lambda: "Accuracy" in str(details.render()), timeout=30)
            assert "last.pth" in str(details.render())

            await pilot.press("shift+tab")  # back to the runs: delete asks about the run folder
            assert screen.focused is runs
            await pilot.press("delete")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
            assert "and all its checkpoints" in str(app.screen.query_one("#question", Static).render())
            await pilot.press("n")

    run(scenario())


def test_a_run_whose_new_session_has_not_started_is_not_taken_for_ended(one_run):
    """Attaching while a resume of an ended run loads: the end in its record is its last session's."""
    from engine.runs.records import read_events
    from tui.runner import session_over

    _, run_dir = one_run
    events = read_events(run_dir / "events.jsonl").items
    started = next(e for e in events if type(e).__name__ == "RunStarted")
    assert session_over(events)  # finished
    assert not session_over([*events, started])  # a resume's session began: it is followed live
    assert not session_over(events[:-1])  # still training
