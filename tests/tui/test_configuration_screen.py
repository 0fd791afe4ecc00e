from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from engine.config import SECTIONS, Settings, SettingsError, load_settings, section_fields
from pilot_helpers import SIZE, run, wait_for
from tui.app import TrainConsole
from tui.widgets.setting_field import SettingField


async def _field(app, pilot, key: str) -> SettingField:
    """The form row of `key`, after bringing its section's tab to the front (rows mount with their tab)."""
    section, name = key.split(".")
    app.screen.show_section(section)
    assert await wait_for(pilot, lambda: bool(app.screen.query(f"#field-{section}-{name}")), timeout=5)
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
            assert await wait_for(pilot, lambda: "must be greater than" in str(doc.render()), timeout=5)
            assert str(doc.render()) == str(expected.value)
            assert field.has_class("-invalid")
            assert app.settings.training.lr == settings.training.lr
            field.query_one(Input).value = "0.01"
            assert await wait_for(pilot, lambda: app.settings.training.lr == 0.01, timeout=5)
            assert not field.has_class("-invalid")

            (await _field(app, pilot, "model.hidden")).query_one(Input).value = "[64, 32]"
            assert await wait_for(pilot, lambda: app.settings.model.hidden == [64, 32], timeout=5)
            label = app.screen.query_one("#param-count", Static)
            assert await wait_for(pilot, lambda: "6,570 parameters" in str(label.render()))  # 64*64+64 + 64*32+32 + 32*10+10

    run(scenario())


async def _set_epochs_to_7_and_save(settings) -> None:
    """In the console on ./settings.toml: screen 2, training.epochs = 7, ctrl+s."""
    app = TrainConsole(settings, "settings.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        (await _field(app, pilot, "training.epochs")).query_one(Input).value = "7"
        assert await wait_for(pilot, lambda: app.settings.training.epochs == 7, timeout=5)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)


def test_ctrl_s_saves_settings_that_load_back(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    run(_set_epochs_to_7_and_save(settings))
    loaded = load_settings(tmp_path / "settings.toml")
    assert loaded.training.epochs == 7
    assert loaded.run.runs_dir == settings.run.runs_dir


def test_ctrl_s_keeps_the_comments_of_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "# my console settings\n\n[training]\nepochs = 3  # quick runs\n\n[run]\nruns_dir = \"runs\"\n"
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
            assert await wait_for(pilot, lambda: app.settings.training.epochs == 42, timeout=5)
            assert (await _field(app, pilot, "training.epochs")).query_one(Input).value == "42"
            assert app.settings_path == other

    run(scenario())
