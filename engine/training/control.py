"""The caller's handle on a run: cooperative stop and pause flags, read by the loop between batches.

Threads cannot be cancelled from outside; the console, the CLI's signal
handlers and (later) a detached run's control channel all steer a run by
setting these flags.
"""

from __future__ import annotations

import threading


class RunControl:
    """The caller's handle on a run: cooperative stop and pause, read by the loop between batches."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.reason = ""

    def stop(self, reason: str = "stopped by the user") -> None:
        if not self._stop.is_set():
            self.reason = reason
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def toggle_pause(self) -> bool:
        """Pause or resume; True when now paused."""
        if self.paused:
            self.resume()
        else:
            self.pause()
        return self.paused

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self._stop.is_set()

    def wait_while_paused(self, timeout: float = 0.2) -> None:
        self._running.wait(timeout)

    def wait_for_stop(self, timeout: float) -> None:
        """Sleep up to `timeout`, waking at a stop."""
        self._stop.wait(timeout)
