"""`e` on the training screen: the latest epoch's badge explained; left and right step between badges."""

from __future__ import annotations

from textual.widgets import Label, Static

from engine.events import Diagnostic, EpochCompleted, RunStarted
from engine.training.advice import ADVICE
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole
from tui.messages import AttachedHistory, EngineEvent
from tui.screens.explain import ExplainScreen
from tui.screens.help import help_text
from tui.screens.training import TrainingScreen

OK = Diagnostic("ok", "loss gap -0.1000, accuracy gap -2.0%", {"loss_gap": -0.1, "acc_gap": -0.02})


def _overfitting(epoch: int) -> Diagnostic:
    gap = 0.5 + epoch / 100
    return Diagnostic(
        "overfitting",
        f"val-train loss gap {gap:+.4f} > 0.5000",
        {"loss_gap": gap, "acc_gap": 0.12, "train_loss": 0.2, "val_loss": 0.2 + gap},
    )


NAN = Diagnostic("nan", "train_loss is nan at epoch 6", {"train_loss": float("nan"), "val_loss": 2.5})


def _epoch(epoch: int, diagnostic: Diagnostic) -> EpochCompleted:
    return EpochCompleted(epoch, 9, 0.5, 0.6, 0.8, 0.7, 1e-3, 0.1, 9000.0, diagnostic, False, None)


def _started(run_dir) -> RunStarted:
    settings = {"model": {"name": "mlp"}, "data": {"dataset": "digits"}}
    return RunStarted(str(run_dir), settings, "cpu", "x86_64", 1000, 1437, 360, 23, "in-memory", "fp32", 0, 9, 1)


def _dialog_text(app) -> str:
    return str(app.screen.query_one("#explain-text", Static).render())


def _flat(text: str) -> str:
    """Text with its line breaks and runs of spaces as one space: the dialog wraps its prose to its width."""
    return " ".join(text.split())


def _where(app) -> str:
    return str(app.screen.query_one("#explain-where", Label).render())


async def _fed_screen(pilot, diagnostics: list[Diagnostic]) -> TrainingScreen:
    """Key 3, then one EpochCompleted per diagnostic, as the runner hands them to the training screen."""
    await pilot.press("3")
    screen = pilot.app.screen
    screen.post_message(EngineEvent(_started(pilot.app.settings.run.runs_dir)))
    for n, diagnostic in enumerate(diagnostics, 1):
        screen.post_message(EngineEvent(_epoch(n, diagnostic)))
    assert await wait_for(pilot, lambda: len(screen.badges) == len(diagnostics))
    return screen


def test_e_explains_the_latest_badge_with_its_evidence_and_advice_and_escape_closes(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await _fed_screen(pilot, [OK, OK, _overfitting(3), _overfitting(4)])
            await pilot.press("e")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ExplainScreen))
            text = _dialog_text(app)
            assert text.startswith("OVERFITTING at epoch 4")
            assert "val-train loss gap +0.5400 > 0.5000" in text
            for shown in ("loss_gap", "+0.5400", "acc_gap", "+12.0%", "val_loss", "0.7400"):
                assert shown in text, shown
            assert _flat(ADVICE["overfitting"].meaning) in _flat(text)
            assert all(_flat(item) in _flat(text) for item in ADVICE["overfitting"].what_to_try)
            assert "overfitting: epochs 3-4" in _where(app)
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: app.screen is screen)

    run(scenario())


def test_left_and_right_step_between_the_epochs_with_a_badge(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await _fed_screen(pilot, [OK, _overfitting(2), OK, _overfitting(4), OK, NAN, OK])
            await pilot.press("e")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ExplainScreen))
            assert _dialog_text(app).startswith("OK at epoch 7")  # the latest, even when it is OK
            seen = []
            for _ in range(5):  # one more than there are: the first stays
                await pilot.press("left")
                seen.append(app.screen.epoch)
            assert seen == [6, 4, 2, 2, 2]
            assert _dialog_text(app).startswith("OVERFITTING at epoch 2")
            await pilot.press("right", "right")
            assert _dialog_text(app).startswith("NaN at epoch 6")
            assert "train_loss is nan at epoch 6" in _dialog_text(app) and "nan" in _dialog_text(app)
            assert "badge 3 of 4" in _where(app)
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: isinstance(app.screen, TrainingScreen))

    run(scenario())


def test_e_before_any_epoch_says_so_and_opens_nothing(tmp_path):
    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("3", "e")
            said = lambda: any("No epoch has ended yet" in str(t.render()) for t in app.screen.query("Toast"))  # noqa: E731
            assert await wait_for(pilot, said)
            assert isinstance(app.screen, TrainingScreen)

    run(scenario())


def test_an_attached_run_s_badges_are_explained_and_its_markup_shown_as_written(tmp_path):
    """An attached run's diagnostics come from its events.jsonl: data, never markup; an epoch known only from
    metrics.jsonl is explained from its status."""
    hostile = Diagnostic("underfitting", "[bold red]loud[/] \x1b[31m", {"train_loss": 1.5})

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            screen = app.screen
            rows = [_epoch(n, OK).metrics() for n in (1, 2)]
            rows[0]["diagnostic"] = "nan"
            screen.post_message(AttachedHistory(tmp_path, [_started(tmp_path), _epoch(2, hostile)], rows))
            assert await wait_for(pilot, lambda: len(screen.badges) == 2)
            await pilot.press("e")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ExplainScreen))
            text = _dialog_text(app)
            assert "[bold red]loud[/]" in text and "\x1b" not in text
            await pilot.press("left")
            assert _dialog_text(app).startswith("NaN at epoch 1") and "not recorded" in _dialog_text(app)

    run(scenario())


def test_the_key_is_in_the_help_and_the_footer(tmp_path):
    assert "training: explain the latest epoch's badge" in help_text(TrainConsole.BINDINGS)

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await pilot.pause()
            keys = [b.key for _, b, enabled, _ in app.screen.active_bindings.values() if b.show and enabled]
            assert "e" in keys

    run(scenario())
