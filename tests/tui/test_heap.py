"""When the console lets Python collect garbage: never while answering a key, never over the warm-up's imports."""

from __future__ import annotations

import gc

import pytest

from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui import heap
from tui.app import TrainConsole


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Timer:
    def __init__(self, delay: float, callback) -> None:
        self.delay, self.callback, self.stopped = delay, callback, False

    def stop(self) -> None:
        self.stopped = True


class _App:
    def __init__(self) -> None:
        self.timers: list[_Timer] = []

    def set_timer(self, delay, callback, name=None) -> _Timer:
        self.timers.append(_Timer(delay, callback))
        return self.timers[-1]


@pytest.fixture
def collections_on():
    gc.enable()
    yield
    gc.enable()


def test_input_pauses_collections_until_a_quiet_moment(collections_on):
    clock, app = _Clock(), _App()
    pause = heap.InputPause(clock)
    pause.input_seen(app)
    assert not gc.isenabled() and app.timers[-1].delay == heap.InputPause.PAUSE_S
    clock.now += 0.1
    pause.input_seen(app)  # another key: the pause runs PAUSE_S from this one
    assert app.timers[0].stopped and not app.timers[1].stopped and not gc.isenabled()
    app.timers[-1].callback()
    assert gc.isenabled() and pause.paused_since is None


def test_input_that_never_stops_still_lets_collections_run_after_the_longest_pause(collections_on):
    clock, app = _Clock(), _App()
    pause = heap.InputPause(clock)
    pause.input_seen(app)
    clock.now += heap.InputPause.LONGEST_S
    pause.input_seen(app)  # not extended: the timer set before ends the pause
    assert len(app.timers) == 1 and not app.timers[0].stopped
    app.timers[0].callback()
    assert gc.isenabled()
    pause.input_seen(app)  # and the next key starts a new one
    assert not gc.isenabled() and len(app.timers) == 2


def test_input_leaves_collections_alone_when_someone_else_turned_them_off(collections_on):
    app = _App()
    pause = heap.InputPause()
    gc.disable()  # the warm-up's hold, or Textual while it scrolls
    pause.input_seen(app)
    pause.end()
    assert not gc.isenabled() and app.timers == []


def test_settle_freezes_what_the_hold_built_and_turns_collections_back_on(collections_on):
    heap.hold()
    assert not gc.isenabled()
    built = [[i] for i in range(1000)]  # noqa: F841  tracked objects made while held
    before = gc.get_freeze_count()
    heap.settle()
    try:
        assert gc.isenabled() and gc.get_freeze_count() >= before + 1000
    finally:
        gc.unfreeze()


def test_the_console_holds_collections_while_it_answers_a_key(tmp_path, monkeypatch, collections_on):
    during: list[bool] = []
    switch = TrainConsole.switch_mode
    monkeypatch.setattr(
        TrainConsole, "switch_mode", lambda self, mode: (during.append(gc.isenabled()), switch(self, mode))[1]
    )

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            assert await wait_for(pilot, lambda: app.torch_ready)
            assert gc.isenabled()
            await pilot.press("2")
            assert during == [False], "the key's screen switch ran with collections on"
            assert await wait_for(pilot, gc.isenabled, timeout=5), "collections come back once the keys stop"
            await pilot.press("1")
        assert gc.isenabled(), "an app that closes mid-pause turns collections back on"

    run(scenario())


def test_an_app_closed_before_pytorch_was_ready_turns_collections_back_on(tmp_path, monkeypatch, collections_on):
    monkeypatch.setattr(TrainConsole, "_warm_up", lambda self, dataset: None)  # TorchReady never comes

    async def scenario():
        app = TrainConsole(tiny_settings(tmp_path), tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert not gc.isenabled() and not app.torch_ready
        assert gc.isenabled()

    run(scenario())
