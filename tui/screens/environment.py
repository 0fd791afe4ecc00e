"""Screen 1: what `trainconsole env` reports, and the device to train on."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Select, Static

from engine.settings.config import SettingsError
from engine.io.text import printable
from tui.data_text import data_text
from tui.widgets.key_footer import KeyFooter
from tui.widgets.screen_tabs import ScreenTabs

GPU_REFRESH_S = 2.0


def device_choices(report: dict[str, Any]) -> list[str]:
    """auto, cpu, and the accelerators this machine has."""
    choices = ["auto", "cpu"]
    choices += [f"cuda:{gpu['index']}" for gpu in report.get("gpus", [])]
    if report.get("mps_available"):
        choices.append("mps")
    return choices


def format_gpus(gpus: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"GPU {g['index']} {g['name']}: {g['used'] / 1e9:.2f} GB used, "
        f"{g['free'] / 1e9:.2f} GB free of {g['total'] / 1e9:.1f} GB"
        for g in gpus
    )


class EnvironmentScreen(Screen):
    BINDINGS = [Binding("d", "pick_device", "Device", tooltip="focus the device picker")]

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None
        self._gpu_timer = None

    def compose(self) -> ComposeResult:
        yield ScreenTabs("environment")
        with VerticalScroll(id="env-body"):
            yield Static("Loading PyTorch ...", id="env-report")
            with Horizontal(id="device-row"):
                yield Label("Train on:", id="device-label")
                shown = self.app.settings.device.device if self.app.settings.device.device == "cpu" else "auto"
                yield Select([("auto", "auto"), ("cpu", "cpu")], value=shown, allow_blank=False, id="device-select")
            yield Static("", id="device-note")
            yield Static("", id="gpu-memory")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._load_report()

    def on_screen_resume(self) -> None:
        self._show_device()
        if self._gpu_timer is not None:
            self._gpu_timer.resume()

    def on_screen_suspend(self) -> None:
        if self._gpu_timer is not None:
            self._gpu_timer.pause()

    @work(thread=True, exclusive=True, exit_on_error=False, group="env-report")
    def _load_report(self) -> dict[str, Any]:
        from engine.device import environment_report

        return environment_report()

    def on_worker_state_changed(self, event) -> None:
        worker = event.worker
        if worker.group == "env-report" and worker.is_finished:
            if worker.error is not None:
                self.query_one("#env-report", Static).update(data_text(f"Environment report failed: {worker.error}"))
            elif worker.result is not None:
                self._show_report(worker.result)
        elif worker.group == "gpu-memory" and worker.is_finished and worker.result:
            self.query_one("#gpu-memory", Static).update(Text(printable(format_gpus(worker.result), keep="\n")))

    def _show_report(self, report: dict[str, Any]) -> None:
        from engine.device import format_report

        self.report = report
        self.query_one("#env-report", Static).update(Text(printable(format_report(report), keep="\n")))
        select = self.query_one("#device-select", Select)
        with select.prevent(Select.Changed):  # new options select the first, "auto": not the user's choice
            select.set_options([(c, c) for c in device_choices(report)])
        self._show_device()
        if report["cuda_available"]:
            self._gpu_timer = self.set_interval(GPU_REFRESH_S, self._refresh_gpus)
            self._refresh_gpus()

    def _show_device(self) -> None:
        if self.report is None:
            return
        select = self.query_one("#device-select", Select)
        current = self.app.settings.device.device
        choices = device_choices(self.report)
        if current == "cuda" and "cuda:0" in choices:
            current = "cuda:0"
        note = ""
        if current not in choices:
            note = f"settings ask for device '{current}', which this machine does not have"
            current = "auto"
        with select.prevent(Select.Changed):
            select.value = current
        self.query_one("#device-note", Static).update(
            data_text(
                note
                or f"settings: device.device = '{self.app.settings.device.device}'; "
                f"auto picks {self.report['auto_device']}"
            )
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpu-memory")
    def _refresh_gpus(self) -> list[dict[str, Any]]:
        from engine.device import gpu_memory

        return [{"index": g["index"], "name": g["name"], **gpu_memory(g["index"])} for g in self.report["gpus"]]

    def on_select_changed(self, event: Select.Changed) -> None:
        if (
            event.select.id != "device-select"
            or self.report is None  # the select's own start (mount), before the machine's choices: not the user's
            or event.value is Select.BLANK
            or event.value == self.app.settings.device.device
        ):
            return
        try:
            self.app.set_settings(self.app.settings.replace("device.device", str(event.value)))
        except SettingsError as e:
            self.notify(str(e), severity="error", markup=False)
            return
        self.query_one("#device-note", Static).update(
            data_text(f"settings: device.device = '{event.value}' (ctrl+s on the configuration screen saves it)")
        )

    def action_pick_device(self) -> None:
        self.query_one("#device-select", Select).focus()
