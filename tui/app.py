"""The console: four screens as modes, the global bindings, the shared settings.

Nothing here imports torch: the first screen paints at once and torch is
imported by a background worker after mount.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.settings.config import Settings, SettingsError, load_settings
from engine.settings.renames import RenamedSetting, renamed_notes
from engine.cli.crash import crash_line, write_crash_report
from engine.cli.exits import EXIT_INTERRUPTED  # the headless CLI's code for a run stopped by a signal
from tui import heap, textual_compat
from tui.data_text import PlainNotifications
from tui.messages import TorchReady
from tui.screen_table import SCREENS
from tui.unsaved import settle_unsaved

# SIGHUP: the terminal went away (a dropped SSH session, a killed tmux); SIGTERM, SIGINT: asked to stop
# after a hang-up: the most a run may take to reach its batch boundary and save, then the grace of a normal shutdown
HANGUP_SAVE_WAIT_S = 600.0
HANGUP_GRACE_S = 5.0
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGHUP", None), signal.SIGTERM, signal.SIGINT) if s is not None)


class TrainConsole(PlainNotifications, App):
    """trainconsole: environment, configuration, live training and checkpoints.

    Notifications are plain text (PlainNotifications): paths, run names and errors in them come from files."""

    CSS_PATH = "app.tcss"
    TITLE = "trainconsole"
    MODES = {entry.mode: entry.build for entry in SCREENS}
    DEFAULT_MODE = SCREENS[0].mode
    BINDINGS = [
        # the tabs above show the screens' keys: the footer keeps its width for the screen's own keys, ? and q
        *(Binding(entry.key, f"switch_mode('{entry.mode}')", entry.short, show=False) for entry in SCREENS),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding(
            "q",
            "quit_console",
            "Quit",
            tooltip="quit (asks first while a run is active, then stops it and saves last.pth; "
            "and before unsaved settings are lost)",
        ),
    ]

    # Textual's switch_mode holds the display for 50 ms (delay_update) so that a screen still being
    # composed is not seen half-drawn. A screen shown before is already composed and laid out,
    # so a switch back to it paints after one frame: the 50 ms were most of a key press's latency.
    SHOWN_SCREEN_PAINT_DELAY_S = 1 / 60

    def __init__(
        self,
        settings: Settings,
        settings_path: str | Path = "settings.toml",
        settings_error: str | None = None,
        allowed_imports: Iterable[str] = (),
        attach: Path | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        super().__init__()
        textual_compat.guard_option_list_paging()
        self._shown_modes: set[str] = set()
        self._paint_delay: float | None = None
        self.settings = settings  # the one current Settings object; screens read it when shown
        self.settings_path = Path(settings_path)
        # what the settings file holds as last loaded or saved (as to_dict): quitting with other values asks first
        self.saved_settings = settings.to_dict()
        self.settings_error = settings_error
        self.settings_notes = list(notes)  # what loading the settings said (a renamed key), shown once up
        # import paths that settings from a checkpoint or run folder may name (--allow-import);
        # the console's own settings add theirs
        self.allowed_imports = frozenset(allowed_imports)
        self.stopped_by: str | None = None  # the signal that closed the console
        self.crash_report: Path | None = None
        self.run_done = threading.Event()  # cleared while the Runner's worker runs or follows a run
        self.run_done.set()
        self.process_owner = False  # main() runs it: the process is the console's to end (not a test's)
        self.returned = threading.Event()  # App.run() came back: the shutdown did not block
        self._attach_at_start = attach  # `trainconsole attach RUN`: the training screen follows it once the app is up
        textual_compat.on_crash(self, self._crash)  # exit code 1, and one line instead of Textual's traceback
        self.run_control: Any = None  # RunControl of the active run (set by the Runner)
        self.torch_ready = False
        self._heap_held = False  # collections are off from mount until PyTorch is ready
        self.input_pause = heap.InputPause()
        self._after_torch: list[Callable[[], None]] = []

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        if self.settings_error:
            self.notify(
                f"{self.settings_error}\nUsing built-in defaults.",
                title="Settings",
                severity="error",
                timeout=10,
                markup=False,
            )
        for note in self.settings_notes:
            self.notify(note, title="Settings", timeout=10, markup=False)
        if self._attach_at_start is not None:
            self.call_after_refresh(lambda: self.run_worker(self.attach_run(self._attach_at_start)))
        heap.hold()  # no collection walks the warm-up's imports: they are frozen when it is done
        self._heap_held = True
        self._warm_up(self.settings.data.dataset)

    def on_unmount(self) -> None:
        # never wait for a whole run: the loop stops at the next batch boundary and saves last.pth
        self._stop_run("console closed")
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if self._heap_held:  # closed before PyTorch was ready
            heap.release()
        self.input_pause.end()

    def _on_stop_signal(self, signum: int) -> None:
        """As in a headless run: the run stops at the next batch boundary with last.pth saved; the console closes."""
        name = signal.Signals(signum).name
        if self.stopped_by is None:
            self.stopped_by = name
            self._stop_run(f"{name} received: stopped at a batch boundary, last.pth saved")
            self.exit(return_code=EXIT_INTERRUPTED)
            if signum == getattr(signal, "SIGHUP", None) and self.process_owner:
                threading.Thread(target=self._exit_after_hangup, name="trainconsole-hangup", daemon=True).start()

    def _exit_after_hangup(self) -> None:
        """The terminal is gone, and Textual's shutdown can block for good writing to it (its writer queue fills):
        once the run has saved last.pth and a normal shutdown had its chance, the process ends with the same code."""
        self.run_done.wait(HANGUP_SAVE_WAIT_S)
        if not self.returned.wait(HANGUP_GRACE_S):
            os._exit(EXIT_INTERRUPTED)

    def _crash(self, error: Exception) -> str:
        """A crash of the console itself: the run is stopped and saved, the traceback goes to a file.

        Returns the line to print.
        """
        self._stop_run("the console crashed")
        self.crash_report = write_crash_report(error, "trainconsole console crash")
        return crash_line(error, self.crash_report, "trainconsole console")

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent) and not event.is_forwarded:
            self.input_pause.input_seen(self)
        await super().on_event(event)

    @work(thread=True, exclusive=True, exit_on_error=False, group="warm-up")
    def _warm_up(self, dataset: str) -> None:
        try:
            import engine.runs.checkpoints  # noqa: F401  (torch, torchvision-free)
            import engine.api  # noqa: F401

            _first_step()
            _import_torchvision()
            _import_loader(dataset)
        except Exception as e:  # pragma: no cover - a broken torch install
            self.post_message(TorchReady(f"{type(e).__name__}: {e}"))
            return
        self.post_message(TorchReady())

    def on_torch_ready(self, message: TorchReady) -> None:
        heap.settle()
        self._heap_held = False
        if message.error:
            self.notify(f"PyTorch failed to load: {message.error}", severity="error", timeout=30, markup=False)
            return
        self.torch_ready = True
        callbacks, self._after_torch = self._after_torch, []
        for callback in callbacks:
            callback()

    def when_torch_ready(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the UI thread once torch is imported (at once if it is)."""
        if self.torch_ready:
            callback()
        else:
            self._after_torch.append(callback)

    def switch_mode(self, mode: str):
        shown_before = mode in self._shown_modes or mode == self.current_mode
        self._shown_modes.update((mode, self.current_mode))
        self._paint_delay = self.SHOWN_SCREEN_PAINT_DELAY_S if shown_before else None
        try:
            result = super().switch_mode(mode)
        finally:
            self._paint_delay = None
        if not shown_before:
            screen = self.screen
            screen.call_after_refresh(lambda: textual_compat.mark_styles_current(self, screen))
        return result

    def delay_update(self, delay: float = 0.05) -> None:
        super().delay_update(delay if self._paint_delay is None else min(delay, self._paint_delay))

    def trusted_imports(self) -> set[str]:
        """Code that settings from a checkpoint or run folder may import.

        That is what the console's settings and --allow-import name.
        """
        from engine.settings.user_code import named_imports

        return named_imports(self.settings) | self.allowed_imports

    def set_settings(self, settings: Settings, path: str | Path | None = None) -> None:
        self.settings = settings
        if path is not None:  # loaded from that file
            from engine.settings.user_code import set_code_folder

            self.settings_path = Path(path)
            self.saved_settings = settings.to_dict()
            set_code_folder(self.settings_path.resolve().parent)

    async def start_run(self, settings: Settings, resume_from: str | Path | None = None) -> None:
        """Switch to the training screen and start a run there (the checkpoints screen's resume)."""
        await self.switch_mode("training")
        self.screen.start_run(settings, resume_from)

    async def attach_run(self, run_dir: Path) -> None:
        """Show a run that trains in another process on the training screen (the checkpoints screen's attach); a
        sweep's folder (`trainconsole attach runs/STUDY`) on the sweep screen."""
        from engine.sweep.storage import is_sweep_dir

        if is_sweep_dir(run_dir):
            await self.switch_mode("sweep")
            self.screen.follow(run_dir)
            return
        await self.switch_mode("training")
        self.screen.attach(run_dir)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.current_mode))

    def action_quit_console(self) -> None:
        """q: asks first while a run is active, then about unsaved settings; the run is stopped only on the way out."""
        from tui.screens.confirm import ConfirmScreen, UnsavedScreen

        if isinstance(self.screen, (ConfirmScreen, UnsavedScreen)):  # a question is open: it is answered first
            return

        def leave() -> None:
            self._stop_run("console closed")
            self.exit()

        if self.run_control is None:
            settle_unsaved(self, leave)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                settle_unsaved(self, leave)

        self.push_screen(
            ConfirmScreen("A run is active. Stop it (last.pth is saved) and quit?", "Stop and quit"), answer
        )

    async def action_quit(self) -> None:
        """ctrl+q and the palette's Quit: no question about a run (it is stopped and saves last.pth, as on q's yes),
        only about unsaved settings."""
        settle_unsaved(self, self.exit)

    def _stop_run(self, reason: str) -> None:
        if self.run_control is not None:
            self.run_control.stop(reason)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for entry in SCREENS:
            yield SystemCommand(f"Screen: {entry.mode}", entry.summary, lambda m=entry.mode: self.switch_mode(m))
        yield SystemCommand("Help", "Keys of this screen", self.action_help)


def _first_step() -> None:
    """One tiny CPU training step: torch imports more modules lazily on the first optimizer step
    (dynamo, distributed tensors), which would otherwise stall the first epoch of the first run."""
    import torch

    from engine.settings.config import Settings
    from engine.training.optim import build_optimizer

    model = torch.nn.Linear(4, 2)
    optimizer = build_optimizer(model, Settings().training, torch.device("cpu"))
    torch.nn.functional.cross_entropy(model(torch.randn(3, 4)), torch.tensor([0, 1, 0])).backward()
    optimizer.step()


def _import_torchvision() -> None:
    """torchvision imports torch._dynamo: about 2 s of Python holding the GIL. The environment
    report imports it; done here, before a run may start, it never slows a run's first epoch."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # the environment screen reports a broken torchvision
        pass


def _import_loader(dataset: str) -> None:
    """The configured dataset's loader modules (scikit-learn for digits), imported before being frozen with torch's."""
    from engine.data.sources import import_loader

    try:
        import_loader(dataset)
    except Exception:  # the run that needs them reports it
        pass


def load_initial_settings(config_path: str | Path) -> tuple[Settings, str | None]:
    try:
        return load_settings(config_path), None
    except SettingsError as e:
        return Settings(), str(e)


def main(
    config_path: str = "settings.toml",
    settings: Settings | None = None,
    allowed_imports: Iterable[str] = (),
    attach: Path | None = None,
    notes: Iterable[str] = (),
) -> int:
    """Run the console; the exit code: 0, 1 when it crashed, 130 when a signal closed it (its run stopped and saved)."""
    from engine.device import apply_openmp_defaults

    apply_openmp_defaults()  # before the warm-up imports torch
    error = None
    if settings is None:
        with renamed_notes() as notes:
            settings, error = load_initial_settings(config_path)
    # an old key read anywhere later (a run folder, a checkpoint) is mapped silently: stderr is the screen now
    warnings.filterwarnings("ignore", category=RenamedSetting)
    app = TrainConsole(settings, config_path, error, allowed_imports, attach, notes)
    app.process_owner = True
    app.run()
    app.returned.set()
    return app.return_code or 0
