"""Pilot helpers: each test is a plain function that runs one coroutine (no pytest-asyncio needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import settings_helpers
from engine.settings.config import Settings

SIZE = (120, 40)


def tiny_settings(tmp_path: Path, epochs: int = 3) -> Settings:
    """The console's tests: built-in defaults (device auto, threads chosen by the run), 3 epochs unless told."""
    return settings_helpers.tiny_settings(tmp_path, epochs=epochs)


async def wait_for(pilot, condition, timeout: float = 60.0, step: float = 0.05) -> bool:
    """Poll instead of pausing blindly: a CPU-bound worker makes each pause slow."""
    for _ in range(int(timeout / step)):
        await pilot.pause(step)
        if condition():
            return True
    return False


def run(coro) -> None:
    asyncio.run(coro)


class ScreenTime:
    """The training screen's clock and the timers it sets, moved by the test instead of by the wall clock.

    A draw that falls due "later" happens when the test fires it, so the steps in between may take as
    long as a loaded machine makes them. Timers set by code outside tui.screens.training run as usual.
    """

    def __init__(self, monkeypatch, now: float = 1000.0):
        from types import SimpleNamespace

        import tui.screens.training as training_module

        self.now = now
        self.timers: list[HeldTimer] = []
        original = training_module.TrainingScreen.set_timer

        def set_timer(screen, delay, callback=None, **kwargs):
            if getattr(callback, "__module__", None) != training_module.__name__:
                return original(screen, delay, callback, **kwargs)
            timer = HeldTimer(screen, delay, callback)
            self.timers.append(timer)
            return timer

        monkeypatch.setattr(training_module, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(training_module.TrainingScreen, "set_timer", set_timer)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def pending(self) -> list[float]:
        """The delays of the timers set and neither stopped nor fired yet."""
        return [timer.delay for timer in self.timers if not timer.done]

    def fire(self) -> list[float]:
        """Fire every pending timer (on its screen's message loop, as Textual would); their delays."""
        fired = [timer for timer in self.timers if not timer.done]
        for timer in fired:
            timer.done = True
            timer.screen.call_later(timer.callback)
        return [timer.delay for timer in fired]


class HeldTimer:
    def __init__(self, screen, delay: float, callback):
        self.screen, self.delay, self.callback, self.done = screen, delay, callback, False

    def stop(self) -> None:
        self.done = True
