"""Screen 2: every setting of every section as a form, validated by the engine as you type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static, TabbedContent, TabPane

from engine.settings.renames import renamed_notes
from engine.settings.config import SECTIONS, Settings, SettingsError, load_settings, section_fields
from engine.settings.defaults import model_choice, resolve_defaults, run_name_choice
from tui.data_text import data_text
from tui.unsaved import save_settings_file, settle_unsaved
from tui.widgets.key_footer import KeyFooter
from tui.widgets.screen_tabs import ScreenTabs
from tui.widgets.setting_field import SettingField

PARAMS_DELAY_S = 0.4


def count_model_parameters(settings: Settings) -> str:
    """Build data and model on the CPU and count parameters (slow: call from a worker)."""
    import torch

    from engine.data.loaders import build_data
    from engine.models.networks import build_model, count_parameters

    data = build_data(settings.data, settings.run.seed, torch.device("cpu"), augment=False)
    model = build_model(resolve_defaults(settings).model, data.in_shape, data.num_classes)
    return (
        f"Model {model_choice(settings)}: {count_parameters(model):,} parameters "
        f"(input {tuple(data.in_shape)}, {data.num_classes} classes); run name {run_name_choice(settings)}"
    )


class ConfigurationScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="save the settings file (atomic; your comments and layout stay)"),
        Binding("ctrl+o", "focus_path", "Load file", tooltip="load another settings file (the path field)"),
        Binding(
            "ctrl+l",
            "lr_find",
            "LR finder",
            tooltip="sweep the learning rate on these settings and suggest one (a puts it in training.lr)",
        ),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def action_leave_field(self) -> None:
        """Escape leaves a text field, so the screen keys (1-4, q) work again."""
        self.set_focus(None)

    def __init__(self) -> None:
        super().__init__()
        self.shown: Settings | None = None  # the settings object the form last displayed
        self.invalid: dict[str, Any] = {}  # key -> the value typed there that the engine rejected
        self._params_timer = None

    def compose(self) -> ComposeResult:
        yield ScreenTabs("configuration")
        with Horizontal(id="config-file-row"):
            yield Label("File:")
            yield Input(str(self.app.settings_path), id="settings-path", select_on_focus=False)  # tab: cursor at end
            yield Button("Load", id="load")
            yield Button("Save", id="save", variant="primary")
        yield Static("", id="param-count")
        # One tab per section, its rows mounted when the tab is first shown:
        # ~45 rows (~225 widgets) mounted at once froze the screen for over a second.
        with TabbedContent(id="config-form"):
            for section in SECTIONS:
                with TabPane(section, id=f"tab-{section}"):
                    if section == "run":
                        yield self._section_rows(section)
        yield KeyFooter()

    @staticmethod
    def _section_rows(section: str) -> VerticalScroll:
        doc = SECTIONS[section].__doc__
        return VerticalScroll(
            Static(doc.strip() if doc else "", classes="section-title", markup=False),
            *(SettingField(section, f) for f in section_fields(section)),
        )

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane
        if pane is not None and not pane.children:
            pane.mount(self._section_rows(pane.id.removeprefix("tab-")))

    def show_section(self, section: str) -> None:
        """Bring a section's tab to the front (its rows are mounted on the next refresh)."""
        self.query_one(TabbedContent).active = f"tab-{section}"

    def on_mount(self) -> None:
        self.shown = self.app.settings
        self._schedule_params()

    def on_screen_resume(self) -> None:
        if self.app.settings is not self.shown:  # changed elsewhere (device picker, load)
            self.show_settings(self.app.settings)

    def show_settings(self, settings: Settings) -> None:
        values = settings.to_dict()
        for field in self.query(SettingField):
            field.set_value(values[field.section][field.setting_name])
        self.invalid.clear()
        self.shown = settings
        self.query_one("#settings-path", Input).value = str(self.app.settings_path)
        self._schedule_params()

    def on_setting_field_edited(self, message: SettingField.Edited) -> None:
        field = message.field
        current = getattr(getattr(self.app.settings, field.section), field.setting_name)
        if message.value == current and field.key not in self.invalid:
            return  # editors report their initial value when mounted
        if not self._try(field.key, message.value):
            return
        self._retry_invalid(field.section)
        if field.section in ("data", "model", "run"):
            self._schedule_params()

    def _try(self, key: str, value: Any) -> bool:
        """Apply one typed value if the engine accepts it; either way its row shows the outcome."""
        field = self.query_one(f"#field-{key.replace('.', '-')}", SettingField)
        try:
            settings = self.app.settings.replace(key, value, "form")
        except SettingsError as e:
            field.show_error(str(e))
            self.invalid[key] = value
            return False
        field.show_error(None)
        self.invalid.pop(key, None)
        self.app.set_settings(settings)
        self.shown = settings
        return True

    def _retry_invalid(self, section: str) -> None:
        """A change can lift a cross-field rule: retry the section's rejected values.

        For example, model.options = {} lets model.name = mlp through.
        """
        progress = True
        while progress:  # one accepted value can let another through
            progress = False
            for key in [k for k in self.invalid if k.startswith(f"{section}.")]:
                progress |= self._try(key, self.invalid[key])

    def _schedule_params(self) -> None:
        if self._params_timer is not None:
            self._params_timer.stop()
        choice = model_choice(self.app.settings)  # known at once: only the count waits for the data
        self.query_one("#param-count", Static).update(data_text(f"Model {choice}: counting parameters ..."))
        self._params_timer = self.set_timer(PARAMS_DELAY_S, lambda: self._count_params(self.app.settings))

    @work(thread=True, exclusive=True, exit_on_error=False, group="param-count")
    def _count_params(self, settings: Settings) -> str:
        return count_model_parameters(settings)

    def on_worker_state_changed(self, event) -> None:
        worker = event.worker
        if worker.group != "param-count" or not worker.is_finished:
            return
        label = self.query_one("#param-count", Static)
        if worker.error is not None:
            label.update(data_text(f"Model: cannot build ({worker.error})"))
        elif worker.result is not None:
            label.update(data_text(worker.result))

    def action_save(self, path: Path | None = None) -> None:
        """Save to `path` (the Save button's file row), by default to the file the settings came from."""
        save_settings_file(self.app, path or self.app.settings_path, self.invalid)

    def action_lr_find(self) -> None:
        from tui.screens.lr_find import LrFindScreen

        self.app.push_screen(LrFindScreen(self.app.settings), callback=self.apply_lr)

    def apply_lr(self, lr: float | None) -> None:
        """The finder's suggestion in training.lr: in the form and the console's settings, not in the file."""
        if lr is None:
            return
        settings = self.app.settings.replace("training.lr", lr, "lr-find")
        self.app.set_settings(settings)
        self.shown = settings
        self.invalid.pop("training.lr", None)
        self.show_section("training")
        for field in self.query(SettingField):
            if field.key == "training.lr":
                field.set_value(lr)
        self.notify(f"training.lr = {lr:.3g} (not saved: ctrl+s saves it)", markup=False)

    def action_focus_path(self) -> None:
        self.query_one("#settings-path", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load":
            self.load(self.query_one("#settings-path", Input).value)
        elif event.button.id == "save":
            self.action_save(Path(self.query_one("#settings-path", Input).value or "settings.toml"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "settings-path":
            self.load(event.value)

    def load(self, path: str) -> None:
        path = path.strip()
        if "\0" in path or not Path(path).is_file():
            self.notify(f"{path}: no such file", severity="error", markup=False)
            return
        try:
            with renamed_notes() as notes:
                settings = load_settings(path)
        except SettingsError as e:
            self.notify(str(e), severity="error", timeout=10, markup=False)
            # the form still holds the previous file's values: Save must write them there, not over this file
            self.query_one("#settings-path", Input).value = str(self.app.settings_path)
            return

        def apply() -> None:
            self.app.set_settings(settings, path)
            self.show_settings(settings)
            self.set_focus(None)  # back to the screen keys
            self.notify("\n".join([f"loaded {path}", *notes]), markup=False)

        def keep() -> None:  # Cancel: this file stays, and so does the path Save writes to
            self.query_one("#settings-path", Input).value = str(self.app.settings_path)

        settle_unsaved(self.app, apply, keep)  # asked only now that the other file is known to load
