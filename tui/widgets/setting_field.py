"""One setting as a form row: name, editor (Select, Switch or Input), and its doc or error.

Values in an Input are TOML (`[256, 128]`, `{ samples = 2000 }`, `0.001`);
validation is the engine's own `Settings.replace`, so the form and the
headless CLI reject the same values with the same one-line message.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomli_w
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from engine.settings.config import parse_override
from tui.data_text import data_text


def field_kind(f: dataclasses.Field) -> type:
    return type(f.default) if f.default is not dataclasses.MISSING else type(f.default_factory())  # type: ignore[misc]


def toml_text(value: Any) -> str:
    """A value as it would be typed in settings.toml (strings bare, for editing)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(
                f"{k} = {toml_text(v) if not isinstance(v, str) else tomli_w.dumps({'v': v})[4:].strip()}"
                for k, v in value.items()
            )
            + " }"
            if value
            else "{}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def parse_text(key: str, kind: type, text: str) -> Any:
    """What the user typed as a Python value; strings stay as typed."""
    if kind is str:
        return text
    return parse_override(f"{key}={text}")[1]


class SettingField(Vertical):
    """A row of the configuration form for `section.name`."""

    class Edited(Message):
        def __init__(self, field: SettingField, value: Any) -> None:
            super().__init__()
            self.field = field
            self.value = value

    def __init__(self, section: str, f: dataclasses.Field) -> None:
        super().__init__(classes="setting", id=f"field-{section}-{f.name}")
        self.section, self.setting_name, self.key = section, f.name, f"{section}.{f.name}"
        self.kind = field_kind(f)
        self.choices = f.metadata.get("choices")
        self.doc = f.metadata.get("doc", "")
        self.initial: Any = None

    def compose(self) -> ComposeResult:
        # Rows are mounted a little after the screen: show the value current then, not at construction.
        self.initial = getattr(getattr(self.app.settings, self.section), self.setting_name)
        with Horizontal(classes="setting-row"):
            yield Label(self.setting_name, classes="setting-name")
            if self.kind is bool:
                yield Switch(value=bool(self.initial), classes="setting-editor")
            elif self.choices and (not isinstance(self.initial, str) or self.initial in self.choices):
                yield Select(
                    [(c, c) for c in self.choices], value=self.initial, allow_blank=False, classes="setting-editor"
                )
            else:
                # tab moves on through the form: a field it lands on is not selected whole (typing would wipe it)
                yield Input(toml_text(self.initial), classes="setting-editor", select_on_focus=False)
        yield Static(self.doc, classes="setting-doc", markup=False)

    @property
    def editor(self):
        return self.query_one(".setting-editor")

    def set_value(self, value: Any) -> None:
        """Show `value` without reporting it as an edit."""
        editor = self.editor
        if isinstance(editor, Switch):
            with editor.prevent(Switch.Changed):
                editor.value = bool(value)
        elif isinstance(editor, Select):
            with editor.prevent(Select.Changed):
                editor.value = value
        else:
            with editor.prevent(Input.Changed):
                editor.value = toml_text(value)
            editor.cursor_position = len(editor.value)  # tab into it later: typing goes on at the end
        self.show_error(None)

    def show_error(self, error: str | None) -> None:
        doc = self.query_one(".setting-doc", Static)
        doc.update(data_text(error) if error else self.doc)  # the error quotes the value: typed, or from a file
        self.set_class(bool(error), "-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self, parse_text(self.key, self.kind, event.value)))

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self, event.value))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.BLANK:
            self.post_message(self.Edited(self, event.value))
