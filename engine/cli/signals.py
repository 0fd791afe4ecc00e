"""How `trainconsole run` answers SIGINT, SIGTERM and SIGHUP: a stop at the next batch boundary with last.pth
saved; the same signal again, or one before training began, stops at once."""

from __future__ import annotations

import os
import signal
import sys


class StopOnSignals:
    """Installed around one run; `restore` puts the previous handlers back, unless a stop at once is under way."""

    def __init__(self, trainer, control, group):
        self.trainer, self.control, self.group = trainer, control, group
        self.previous = {}
        self.stopping = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                self.previous[sig] = signal.signal(sig, self.on_signal)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            if not self.stopping:  # the stop is under way: further signals stay ignored until the exit
                signal.signal(sig, handler)

    def stop_at_once(self, signum, frame):
        """A second Ctrl-C, or a signal before training began: the run stops where the main thread is, even inside
        a library call, and is recorded as stopped; further Ctrl-C change nothing while that is written."""
        self.stopping = True
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    def on_signal(self, signum, frame):
        # still setting up: nothing to save, nothing to wait for (the ranks of several processes, whose launcher
        # signals them when a peer dies, learn of it through their set-up's agreement instead, and say so)
        if not self.trainer.ready and not self.group.active:
            self.stop_at_once(signum, frame)
        name = signal.Signals(signum).name
        self.control.stop(f"{name} received: stopped at a batch boundary, last.pth saved")
        signal.signal(signum, self.stop_at_once)  # the same signal again: the stop cannot wait for a batch boundary
        if signum == signal.SIGINT:
            _say("trainconsole: stopping at the next batch boundary (last.pth is saved); Ctrl-C again stops at once")


def _say(line: str) -> None:
    """One line on stderr from a signal handler: os.write, since print may be inside a write of its own; a terminal
    that has gone (a dropped SSH session) is no reason to fail."""
    try:
        os.write(sys.stderr.fileno(), (line + "\n").encode())
    except (OSError, ValueError):
        pass
