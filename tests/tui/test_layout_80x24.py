"""The console at 80x24 (and 120x40): dialogs centred and inside the terminal, footers on one line with no key
cut, Tab into a text field leaving its text unselected; with NO_COLOR and without."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from textual.geometry import Region
from textual.widgets import Button, Input, Markdown

from engine.events import Diagnostic
from pilot_helpers import run, wait_for
from tui.app import TrainConsole
from tui.screens.checkpoints import CheckpointsScreen
from tui.screens.configuration import ConfigurationScreen
from tui.screens.confirm import ConfirmScreen, UnsavedScreen
from tui.screens.environment import EnvironmentScreen
from tui.screens.explain import ExplainScreen
from tui.screens.help import HelpScreen
from tui.screens.lr_find import LrFindScreen
from tui.screens.open_logs import OpenLogsScreen
from tui.screens.scalars import ScalarsScreen
from tui.screens.training import TrainingScreen
from tui.widgets.key_footer import KeyFooter

SMALL, LARGE = (80, 24), (120, 40)
OK = Diagnostic("ok", "loss gap -0.1000, accuracy gap -2.0%", {"loss_gap": -0.1, "acc_gap": -0.02})
LONG = "A run is active in /home/someone/experiments/a-rather-long-folder-name/runs/digits-mlp. Stop it and quit?"

DIALOGS = {  # each dialog, and the box it draws
    "confirm": (lambda app: ConfirmScreen(LONG, "Stop and quit"), "#dialog"),
    "unsaved": (lambda app: UnsavedScreen(f"Unsaved changes in {app.settings_path}: training.epochs."), "#dialog"),
    "open-logs": (lambda app: OpenLogsScreen("/home/someone/experiments/runs"), "#dialog"),
    "help": (lambda app: HelpScreen("training"), "#help"),
    "explain": (lambda app: ExplainScreen([(1, OK, True)]), "#explain"),
    "lr-find": (lambda app: LrFindScreen(app.settings), "#lr-find"),
}


@pytest.fixture(params=["colour", "NO_COLOR"])
def colours(request, monkeypatch):
    if request.param == "NO_COLOR":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    return request.param


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
@pytest.mark.parametrize("name", list(DIALOGS))
def test_dialogs_are_centred_and_inside_the_terminal(settings, tmp_path, monkeypatch, name, size):
    monkeypatch.setattr(LrFindScreen, "_sweep", lambda self: None)  # its layout, not a sweep
    build, box = DIALOGS[name]

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=size) as pilot:
            await app.push_screen(build(app))
            dialog = app.screen.query_one(box)
            assert await wait_for(pilot, lambda: dialog.region.area > 0)
            await pilot.pause()
            width, height = size
            region = dialog.region
            assert region.x >= 0 and region.y >= 0 and region.right <= width and region.bottom <= height, region
            assert abs(region.x - (width - region.right)) <= 1, f"not centred across: {region} in {size}"
            assert abs(region.y - (height - region.bottom)) <= 1, f"not centred down: {region} in {size}"
            assert region.width >= min(60, width * 95 // 100) and region.height >= 5, region  # not shrunk to nothing
            for widget in app.screen.query("Button, Input"):  # what is to be pressed or typed in is all shown
                assert dialog.region.contains_region(widget.region), (widget, widget.region, region)
            texts = app.screen.query("Label, Static")
            for label in [w for w in texts if not any(isinstance(a, Markdown) for a in w.ancestors)]:  # Textual's own
                # wrapped where too long (a long path folded), never cut: within the box across, all its text drawn
                assert region.x <= label.region.x and label.region.right <= region.right, (label, label.region)
                text = label.render()
                written = "".join((text.plain if hasattr(text, "plain") else str(text)).split())
                assert "".join(_drawn(label).split()) == written, (label, size, _drawn(label))

    run(scenario())


def _drawn(widget) -> str:
    """The text a widget draws in its region, its lines joined by spaces."""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return " ".join("".join(segment.text for segment in line) for line in lines)


def _footer_keys(screen) -> list:
    footer = screen.query_one(KeyFooter)
    return [key for key in footer.children if key.display]


def _assert_footer_fits(screen, width: int, always=(" ? Help ", " q Quit ")) -> None:
    footer = screen.query_one(KeyFooter)
    keys = _footer_keys(screen)
    texts = [key.render().plain for key in keys]
    assert all(key in texts for key in always), texts
    right = 0
    for key, text in zip(keys, texts):
        region = key.region
        frame = 2 if key.has_class("-command-palette") else 0  # its left border and right padding
        assert region.width == cell_len(text) + frame, f"{text!r} is cut: {region}"  # whole keys only
        assert footer.region.x <= region.x and region.right <= footer.region.right <= width, (text, region)
        if not key.has_class("-command-palette"):
            right = max(right, region.right)
    palettes = [key for key in keys if key.has_class("-command-palette")]
    assert all(p.region.x >= right for p in palettes), "a key under the palette's"
    assert sum(cell_len(t) for t in texts) + sum(2 for _ in palettes) <= width


SCREENS = {"1": EnvironmentScreen, "2": ConfigurationScreen, "3": TrainingScreen, "4": CheckpointsScreen}


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_each_footer_fits_its_line(settings, tmp_path, colours, size):
    shown: dict[str, list[str]] = {}

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=size) as pilot:
            assert app.no_color == (colours == "NO_COLOR")
            for key, screen_class in SCREENS.items():
                await pilot.press(key)
                assert await wait_for(pilot, lambda: isinstance(app.screen, screen_class))
                assert await wait_for(pilot, lambda: len(_footer_keys(app.screen)) >= 2)
                await pilot.pause()
                _assert_footer_fits(app.screen, size[0])
                shown[key] = [k.render().plain for k in _footer_keys(app.screen)]
            await app.push_screen(ScalarsScreen(tmp_path))  # the logs viewer: its q closes it
            assert await wait_for(pilot, lambda: len(_footer_keys(app.screen)) >= 2)
            await pilot.pause()
            _assert_footer_fits(app.screen, size[0], always=(" ? Help ", " esc Close "))

    run(scenario())
    if size == SMALL:  # the screen's first keys stay where later ones are left out
        assert any(" Start " in k for k in shown["3"]) and any(" Attach " in k for k in shown["4"]), shown
    else:
        assert len(shown["3"]) >= 6, shown


def test_the_footer_shows_more_keys_when_the_terminal_widens(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SMALL) as pilot:
            await pilot.press("4")
            assert await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
            assert await wait_for(pilot, lambda: len(_footer_keys(app.screen)) >= 2)
            narrow = len(_footer_keys(app.screen))
            await pilot.resize_terminal(*LARGE)
            assert await wait_for(pilot, lambda: len(_footer_keys(app.screen)) > narrow)
            await pilot.pause()
            _assert_footer_fits(app.screen, LARGE[0])
            await pilot.resize_terminal(*SMALL)
            assert await wait_for(pilot, lambda: len(_footer_keys(app.screen)) == narrow)
            await pilot.pause()
            _assert_footer_fits(app.screen, SMALL[0])

    run(scenario())


def test_tab_into_a_text_field_selects_none_of_its_text(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SMALL) as pilot:
            await pilot.press("2")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ConfigurationScreen))
            assert await wait_for(pilot, lambda: bool(app.screen.query("#field-run-name")))
            landed = []
            for _ in range(12):  # the file's path, its buttons, the section tabs, then the run section's first field
                await pilot.press("tab")
                focused = app.focused
                if isinstance(focused, Input) and focused.value:
                    landed.append(focused.id or focused.parent.parent.id)
                    assert focused.selection.is_empty, (landed[-1], focused.selection)
                    assert focused.cursor_position == len(focused.value), landed[-1]
                if landed[-1:] == ["field-run-name"]:
                    break
            assert landed == ["settings-path", "field-run-name"], landed
            # the form scrolls within the screen: the file's row stays in sight
            assert app.screen.scroll_y == 0 and app.screen.query_one("#config-file-row").region.y >= 0
            await pilot.press("x")  # typed at the end, not over the whole text
            assert await wait_for(pilot, lambda: app.settings.run.name == "autox")

    run(scenario())


def test_tab_in_the_unsaved_dialog_moves_between_its_buttons(settings, tmp_path):
    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SMALL) as pilot:
            answers = []
            await app.push_screen(UnsavedScreen("Unsaved changes in settings.toml: run.name."), answers.append)
            assert isinstance(app.focused, Button) and app.focused.id == "save"
            await pilot.press("tab", "right", "enter")
            assert await wait_for(pilot, lambda: answers == ["cancel"])

    run(scenario())
