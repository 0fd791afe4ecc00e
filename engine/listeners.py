"""Who hears a run: listeners, peers in one list, added from outside the loop (as ignite attaches its handlers).

A listener is a small object with `on_event(event)` for each event and `close()` for the end of the run; a
plain callable is one too (`events.append` in a test). The run recorder, the CLI's printers, the console's
poster and any writer are added the same way, and the loop never names one of them.

A listener that raises is reported once (a `ListenerFailed` event to the others) and hears nothing more;
the run goes on. The run folder's own recorder is the exception: it is `required`, and a run that cannot
record itself fails.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Protocol, Union, runtime_checkable

from engine.events import Event, ListenerFailed


@runtime_checkable
class Listener(Protocol):
    def on_event(self, event: Event) -> None: ...

    def close(self) -> None: ...


ListenerLike = Union[Listener, Callable[[Event], None]]


class CallableListener:
    """A function of one event as a listener."""

    def __init__(self, function: Callable[[Event], None]) -> None:
        self.function = function

    def on_event(self, event: Event) -> None:
        self.function(event)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return getattr(self.function, "__qualname__", repr(self.function))


def as_listener(listener: ListenerLike) -> Listener:
    if hasattr(listener, "on_event"):
        return listener  # type: ignore[return-value]
    if callable(listener):
        return CallableListener(listener)
    raise TypeError(f"a listener needs on_event(event) and close(), or is a callable of one event; got {listener!r}")


def listener_name(listener: Listener) -> str:
    return repr(listener) if isinstance(listener, CallableListener) else type(listener).__name__


class Listeners:
    """Delivers each event to every listener, in the order they were added."""

    def __init__(self, listeners: Iterable[ListenerLike] = ()) -> None:
        self._listeners: list[Listener] = [as_listener(x) for x in listeners]
        # events come from the training thread and from helpers beside it (the command watcher's acknowledgments):
        # one at a time, so that a listener never hears two at once and a file never gets two lines interleaved
        self._lock = threading.RLock()

    def add(self, listener: ListenerLike, *, first: bool = False) -> Listener:
        listener = as_listener(listener)
        self._listeners.insert(0, listener) if first else self._listeners.append(listener)
        return listener

    def __iter__(self):
        return iter(list(self._listeners))

    def emit(self, event: Event, *, final: bool = False) -> None:
        """`final`: the run's last event, which every listener hears even if a required one fails on it.

        The required listener's first failure is the story.
        """
        with self._lock:
            for listener in list(self._listeners):
                try:
                    listener.on_event(event)
                except Exception as e:
                    if getattr(listener, "required", False) and not final:
                        raise
                    self._drop(listener, e, report=not final)  # nothing is heard after the run's last event

    def _drop(self, listener: Listener, error: Exception, report: bool = True) -> None:
        if listener not in self._listeners:
            return
        self._listeners.remove(listener)
        if getattr(listener, "required", False) or not report:
            return  # a required one's failure is already the run's
        self.emit(ListenerFailed(listener_name(listener), f"{type(error).__name__}: {error}"))

    def close(self) -> None:
        for listener in list(self._listeners):
            try:
                listener.close()
            except Exception as e:
                self._drop(listener, e)
