"""When Python's garbage collections run while the console is up.

A full (generation-2) collection walks every object the collector tracks with
the GIL held, so the event loop and the training thread both stop for it, for
a time that grows with the number of objects. Two things made those stops
long enough to feel (BENCHMARKS.md has the measurements):

- The warm-up's imports (torch, torchvision, scikit-learn) build hundreds of
  thousands of objects, and Python started full collections on the way.
  `hold` turns collections off for the warm-up and `settle` freezes what it
  built (`gc.freeze`): no collection walks those objects again. The garbage
  the imports left is frozen with them: collecting it first would walk
  everything once more.
- A console that trains still tracks tens of thousands of objects, and
  Textual's caches make cyclic garbage all the time. The burst of allocation
  of a screen switch often set a collection off, inside the key press that
  caused it. `InputPause` holds collections while the console answers a key
  or mouse event, as Textual holds them while it scrolls.
"""

from __future__ import annotations

import gc
import time
from typing import Any


def hold() -> None:
    """No collections at all until `settle` (or `release`)."""
    gc.disable()


def settle() -> None:
    """Freeze every object there is now, and let collections run again."""
    gc.freeze()
    gc.enable()


def release() -> None:
    """Let collections run again (an app that closes before it settled)."""
    gc.enable()


class InputPause:
    """No collection starts while the app answers input: from a key or mouse event until PAUSE_S after the last one.

    A pause that input keeps extending ends after LONGEST_S all the same, so
    that a key held down does not leave garbage piling up.
    """

    PAUSE_S = 0.25
    LONGEST_S = 2.0

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.paused_since: float | None = None
        self._timer: Any = None

    def input_seen(self, app: Any) -> None:
        if self.paused_since is None:
            if not gc.isenabled():  # held for the warm-up, or paused by Textual while it scrolls: theirs to turn on
                return
            gc.disable()
            self.paused_since = self.clock()
        elif self.clock() - self.paused_since >= self.LONGEST_S:
            return  # the timer already set ends it
        if self._timer is not None:
            self._timer.stop()
        self._timer = app.set_timer(self.PAUSE_S, self.end, name="input-pause")

    def end(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.paused_since is not None:
            self.paused_since = None
            gc.enable()
