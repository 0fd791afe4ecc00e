from __future__ import annotations

import os

import pytest
from textual.widgets import Input, Static

from engine.settings.config import SECTIONS, Settings, SettingsError, load_settings, section_fields
from pilot_helpers import SIZE, run, wait_for
from tui.app import TrainConsole
from tui.widgets.setting_field import SettingField


async def _field(app, pilot, key: str) -> SettingField:
    """The form row of `key`, after bringing its section's tab to the front (rows mount with their tab)."""
    section, name = key.split(".")
    app.screen.show_section(section)
    assert await wait_for(pilot, lambda: bool(app.screen.query(f"#field-{section}-{name}")))
    return app.screen.query_one(f"#field-{section}-{name}", SettingField)


def test_the_form_validates_with_the_engine_rules(settings, tmp_path):
    """Every setting has a row; a bad value shows the engine's own message; TOML lists parse."""
    with pytest.raises(SettingsError) as expected:
        Settings().replace("training.lr", -1, "form")

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            for section in SECTIONS:  # every setting has a row, in its section's tab
                for f in section_fields(section):
                    assert (await _field(app, pilot, f"{section}.{f.name}")).key == f"{section}.{f.name}"

            field = await _field(app, pilot, "training.lr")
            field.query_one(Input).value = "-1"
            doc = field.query_one(".setting-doc", Static)
            assert await wait_for(pilot, lambda: "must be greater than" in str(doc.render()))
            assert str(doc.render()) == str(expected.value)
            assert field.has_class("-invalid")
            assert app.settings.training.lr == settings.training.lr
            field.query_one(Input).value = "0.01"
            assert await wait_for(pilot, lambda: app.settings.training.lr == 0.01)
            assert not field.has_class("-invalid")

            (await _field(app, pilot, "model.hidden")).query_one(Input).value = "[64, 32]"
            assert await wait_for(pilot, lambda: app.settings.model.hidden == [64, 32])
            label = app.screen.query_one("#param-count", Static)
            assert await wait_for(
                pilot, lambda: "6,570 parameters" in str(label.render())
            )  # 64*64+64 + 64*32+32 + 32*10+10

    run(scenario())


async def _set_epochs_to_7_and_save(settings) -> None:
    """In the console on ./settings.toml: screen 2, training.epochs = 7, ctrl+s."""
    app = TrainConsole(settings, "settings.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        (await _field(app, pilot, "training.epochs")).query_one(Input).value = "7"
        assert await wait_for(pilot, lambda: app.settings.training.epochs == 7)
        await pilot.press("ctrl+s")
        saved = lambda: os.path.isfile("settings.toml") and load_settings("settings.toml").training.epochs == 7  # noqa: E731
        assert await wait_for(pilot, saved)


def test_ctrl_s_saves_settings_that_load_back(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    run(_set_epochs_to_7_and_save(settings))
    loaded = load_settings(tmp_path / "settings.toml")
    assert loaded.training.epochs == 7
    assert loaded.run.runs_dir == settings.run.runs_dir


def test_ctrl_s_keeps_the_comments_of_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = '# my console settings\n\n[training]\nepochs = 3  # quick runs\n\n[run]\nruns_dir = "runs"\n'
    (tmp_path / "settings.toml").write_text(text)

    run(_set_epochs_to_7_and_save(load_settings("settings.toml")))
    assert (tmp_path / "settings.toml").read_text() == text.replace("epochs = 3 ", "epochs = 7 ")


def test_loading_another_file_fills_the_form(settings, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("[training]\nepochs = 42\n")

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            app.screen.query_one("#settings-path", Input).value = str(other)
            await pilot.click("#load")
            assert await wait_for(pilot, lambda: app.settings.training.epochs == 42)
            assert (await _field(app, pilot, "training.epochs")).query_one(Input).value == "42"
            assert app.settings_path == other

    run(scenario())


def _notices(app) -> list[str]:
    """The text of the notices on screen, as displayed (needs `run_test(notifications=True)`)."""
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def test_a_file_that_fails_to_load_is_not_saved_over(settings, tmp_path):
    """ctrl+o, a file with a typo, Enter: the error shows the file's text as written ([training] included);
    Save then writes the form where its values came from, and the broken file stays as the user wrote it."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepochs = 3\nlr = 0.3\nepoch = 2\n")
    good = tmp_path / "settings.toml"

    async def scenario():
        app = TrainConsole(settings, good)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("2")
            await pilot.press("ctrl+o")
            app.screen.query_one("#settings-path", Input).value = str(bad)
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: any("keys of [training]: epochs" in n for n in _notices(app))), (
                _notices(app)
            )
            assert app.screen.query_one("#settings-path", Input).value == str(good)
            await pilot.click("#save")
            assert await wait_for(pilot, lambda: any(n.startswith("saved ") for n in _notices(app)))
            assert not any("bad.toml" in n and n.startswith("saved") for n in _notices(app))
            assert app.settings_path == good

    run(scenario())
    assert bad.read_text() == "[training]\nepochs = 3\nlr = 0.3\nepoch = 2\n"
    assert load_settings(good) == settings


def test_save_refuses_the_file_the_console_could_not_load_at_start(tmp_path):
    """The console started on defaults because settings.toml did not load.

    ctrl+s must not write those defaults into it.
    """
    from tui.app import load_initial_settings

    path = tmp_path / "settings.toml"
    path.write_text("[training]\nlr = 0.3\nepoch = 3\n")
    defaults, error = load_initial_settings(path)

    async def scenario():
        app = TrainConsole(defaults, path, error)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            assert await wait_for(pilot, lambda: any("keys of [training]: epochs" in n for n in _notices(app))), (
                _notices(app)
            )
            await pilot.press("2")
            await pilot.press("ctrl+s")
            assert await wait_for(
                pilot, lambda: any(n.startswith("not saved, the file does not load") for n in _notices(app))
            ), _notices(app)

    run(scenario())
    assert path.read_text() == "[training]\nlr = 0.3\nepoch = 3\n"


def test_a_change_clears_the_cross_field_error_it_lifts(settings, tmp_path):
    """model.name = mlp is refused while model.options is set; emptying the options lets the name through."""
    path = tmp_path / "settings.toml"

    async def scenario():
        app = TrainConsole(settings, path)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("2")
            name, options = await _field(app, pilot, "model.name"), await _field(app, pilot, "model.options")
            name.query_one(Input).value = "resnet18"
            assert await wait_for(pilot, lambda: app.settings.model.name == "resnet18")
            options.query_one(Input).value = "{ zero_init_residual = true }"
            assert await wait_for(pilot, lambda: app.settings.model.options == {"zero_init_residual": True})
            name.query_one(Input).value = "mlp"
            assert await wait_for(pilot, lambda: name.has_class("-invalid"))
            assert "takes no options" in str(name.query_one(".setting-doc", Static).render())
            options.query_one(Input).value = "{}"
            assert await wait_for(pilot, lambda: app.settings.model.options == {})
            assert await wait_for(pilot, lambda: app.settings.model.name == "mlp")
            assert not name.has_class("-invalid") and str(name.query_one(".setting-doc", Static).render()) == name.doc
            await pilot.press("escape", "ctrl+s")
            assert await wait_for(pilot, lambda: any(n.startswith("saved ") for n in _notices(app)))
            assert not any("invalid field" in n for n in _notices(app))

    run(scenario())
    saved = load_settings(path)
    assert saved.model.name == "mlp" and saved.model.options == {}


def test_a_save_the_disk_refuses_says_so_and_changes_nothing(settings, read_only_copy, tmp_path):
    """ctrl+s over a settings file on a read-only disk, and Save to a path the OS cannot take.

    One notice each, the console stays.
    """
    folder = read_only_copy({"settings.toml": "[training]\nepochs = 3\n"})

    async def scenario():
        app = TrainConsole(settings, folder / "settings.toml")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("2")
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: any("Read-only file system" in n for n in _notices(app))), _notices(
                app
            )
            app.screen.query_one("#settings-path", Input).value = str(tmp_path / "bad\0name.toml")
            await pilot.click("#save")
            assert await wait_for(pilot, lambda: any("embedded null byte" in n for n in _notices(app))), _notices(app)
            assert app.is_running and app.settings_path == folder / "settings.toml"

    run(scenario())
    assert (folder / "settings.toml").read_text() == "[training]\nepochs = 3\n"


def test_an_old_key_is_read_under_its_new_name_and_said_in_the_console(settings, tmp_path):
    """A settings file with a renamed key (training.fused_step): loaded as training.accel, the note shown once
    at start and on loading, never written over the screen as a Python warning."""
    old = tmp_path / "old.toml"
    old.write_text("[training]\nfused_step = false\n")
    note = f'{old}: training.fused_step is now training.accel (read as accel = "off")'

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml", notes=[note])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            assert await wait_for(pilot, lambda: any(note in text for text in _notices(app)))
            await pilot.press("2")
            app.screen.query_one("#settings-path", Input).value = str(old)
            await pilot.click("#load")
            assert await wait_for(pilot, lambda: app.settings.training.accel == "off")
            loaded = f"loaded {old}"
            assert await wait_for(pilot, lambda: any(loaded in text and note in text for text in _notices(app)))

    run(scenario())
