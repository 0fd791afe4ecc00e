"""Listeners are peers added from outside the loop; one that raises is reported once and the run goes on."""

from __future__ import annotations

from engine.events import EpochCompleted, ListenerFailed, RunFinished, RunStarted
from engine.listeners import Listeners
from engine.api import Run


class EpochCounter:
    """A listener written outside the engine: it hears each event and the end of the run."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.closed = 0

    def on_event(self, event) -> None:
        if isinstance(event, EpochCompleted):
            self.epochs.append(event.epoch)

    def close(self) -> None:
        self.closed += 1


class FullDiskWriter:
    """A log writer whose disk fills at its second event."""

    def __init__(self) -> None:
        self.heard = 0

    def on_event(self, event) -> None:
        self.heard += 1
        if self.heard == 2:
            raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_listener_added_from_outside_hears_every_epoch_and_the_end(tiny_settings):
    counter = EpochCounter()
    trainer = Run(tiny_settings("training.epochs=3"), set_threads=False)
    trainer.add_listener(counter)
    final = trainer.run()
    assert isinstance(final, RunFinished) and final.status == "completed"
    assert counter.epochs == [1, 2, 3] and counter.closed == 1


def test_a_listener_that_raises_is_reported_once_and_the_run_goes_on(tiny_settings):
    events, writer = [], FullDiskWriter()
    trainer = Run(tiny_settings("training.epochs=3"), [writer, events.append], set_threads=False)
    final = trainer.run()
    assert isinstance(final, RunFinished) and final.status == "completed" and final.epochs_completed == 3
    failures = [e for e in events if isinstance(e, ListenerFailed)]
    assert (
        len(failures) == 1
        and failures[0].listener == "FullDiskWriter"
        and "No space left on device" in failures[0].error
    )
    assert writer.heard == 2  # it hears nothing after its failure
    assert [e.epoch for e in events if isinstance(e, EpochCompleted)] == [1, 2, 3]
    assert all(p.is_file() for p in (trainer.run_dir / "checkpoints" / name for name in ("best.pth", "last.pth")))
    recorded = (trainer.run_dir / "events.jsonl").read_text()
    assert '"type": "ListenerFailed"' in recorded  # the run's own record keeps the report


def test_listeners_hear_events_in_the_order_they_were_added():
    heard = []
    listeners = Listeners([lambda e: heard.append(("a", type(e).__name__))])
    listeners.add(lambda e: heard.append(("b", type(e).__name__)))
    listeners.add(lambda e: heard.append(("first", type(e).__name__)), first=True)
    event = RunStarted("run", {}, "cpu", "cpu", 1, 1, 1, 1, "tensors", "fp32", 0, 1, 1)
    listeners.emit(event)
    assert [who for who, _ in heard] == ["first", "a", "b"]


def test_a_failing_listener_does_not_silence_the_others_on_the_final_event():
    heard = []

    class Required:
        required = True

        def on_event(self, event):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    listeners = Listeners([Required(), heard.append])
    final = RunFinished("completed", "done", 1, 1, 0.1, "val_loss", "run", 1.0)
    listeners.emit(final, final=True)  # a required listener's failure on the last event is not raised
    assert heard == [final]
