"""How many torch threads a CPU run trains on, from its first step to its last.

Whether one thread or all the free cores train a small step faster depends on the machine, the model and
what else runs now. A run times its first steps on both (`ThreadTrial`) and keeps the faster, then times
them again at growing intervals (1 s, 2 s, 4 s, ... up to 2 minutes): on a shared VM two threads of one
process can be twice as slow as one for minutes on end, then fast again, with no other process to see
(BENCHMARKS.md). Between trials, a run on more than one thread follows the cores other processes leave
free (`ThreadFollower`, engine.device.CoreWatch).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

from engine.device import CoreWatch
from engine.events import ThreadsChanged

RETIME_FIRST_S, RETIME_MAX_S = 1.0, 120.0  # the next trial after this, then twice as long each time


class ThreadTrial:
    """Steps of a CPU run timed on one thread and on the free cores, in alternating blocks.

    `record(seconds)` takes each step's time and answers the thread count for the next step when it changes.
    After a warm-up, blocks of BLOCK steps alternate between the counts (a block's first step, which wakes
    or parks the pool, is not counted), so that a machine getting busier or quieter meanwhile weighs on both
    alike; the count with the lower median step time wins, one thread unless more are clearly faster.
    Two counted steps on more threads that each took over SLOWER times one thread's median end the trial at
    once, on the fewest: beside a busy process such a step takes ~10 ms, and a whole trial of them cost a
    short run half its speed.
    """

    WARMUP, BLOCK, ROUNDS = 3, 6, 3
    MARGIN = 0.97  # more threads must be 3 % faster: they lose most when another process takes a core
    SLOWER = 2.5

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = tuple(choices)
        self.times: dict[int, list[float]] = {c: [] for c in self.choices}
        self.steps = 0
        self.chosen: int | None = None

    @property
    def current(self) -> int:
        block = max(0, self.steps - self.WARMUP) // self.BLOCK
        return self.choices[block % len(self.choices)]

    def record(self, seconds: float) -> int | None:
        before = self.current
        if self.steps >= self.WARMUP and (self.steps - self.WARMUP) % self.BLOCK:
            self.times[before].append(seconds)
        self.steps += 1
        if self._hopeless(before) or self.steps >= self.WARMUP + self.BLOCK * len(self.choices) * self.ROUNDS:
            self.chosen = self._fastest()
            return self.chosen if self.chosen != before else None
        return self.current if self.current != before else None

    def _hopeless(self, threads: int) -> bool:
        fewest = self.times[min(self.choices)]
        last = self.times[threads][-2:]
        if threads == min(self.choices) or len(fewest) < 3 or len(last) < 2:
            return False
        return min(last) > self.SLOWER * statistics.median(fewest)

    def _fastest(self) -> int:
        medians = {c: statistics.median(t) for c, t in self.times.items()}
        fewest = min(self.choices)
        best = min(medians, key=medians.get)
        return best if medians[best] < medians[fewest] * self.MARGIN else fewest

    def describe(self) -> str:
        return ", ".join(
            f"{c} thread{'s' * (c != 1)} {1e3 * statistics.median(t):.2f} ms" for c, t in self.times.items()
        )


class ThreadFollower:
    """A CPU run on several threads follows the cores other processes leave free (engine.device.CoreWatch)."""

    def __init__(self, watch) -> None:
        self.watch = watch

    def threads(self, current: int) -> int | None:
        """The thread count to switch to now, or None to stay."""
        threads = self.watch.poll()
        return threads if threads is not None and threads != current else None

    @property
    def busy_elsewhere(self) -> float:
        return round(self.watch.last_elsewhere, 2)


class ThreadPlan:
    """A run's thread count: `after_step` while a trial runs, `on_tick` at the progress ticks.

    `choices`: the counts to time (one count: nothing to time); `follow`: follow the free cores on more
    than one thread. Both return the ThreadsChanged to report (a trial's only when the count changed), or None.
    """

    def __init__(self, choices: Sequence[int], follow: bool, *, clock: Callable[[], float] = time.perf_counter):
        self.choices = tuple(choices)
        self.threads = self.choices[0]
        self.follow = follow
        self.clock = clock
        self.trial = ThreadTrial(self.choices) if len(self.choices) > 1 else None
        self.follower = ThreadFollower(CoreWatch(self.threads)) if follow and self.threads > 1 else None
        self.retime_at: float | None = None
        self.retime_after = RETIME_FIRST_S
        self.trials = 0

    def after_step(self, epoch: int, seconds: float) -> ThreadsChanged | None:
        trial = self.trial
        threads = trial.record(seconds)
        if threads is not None:
            torch.set_num_threads(threads)
        if trial.chosen is None:
            return None
        self.trial, previous, self.threads = None, self.threads, trial.chosen
        self.trials += 1
        more = trial.chosen > min(trial.choices)
        self.follower = ThreadFollower(CoreWatch(trial.chosen)) if self.follow and more else None
        self.retime_at = self.clock() + self.retime_after
        self.retime_after = min(2 * self.retime_after, RETIME_MAX_S)
        if self.trials > 1 and trial.chosen == previous:
            return None  # timed again, and nothing changed: not worth a line
        which = "the first steps" if self.trials == 1 else "again"
        return ThreadsChanged(epoch, trial.chosen, previous, 0.0, f"timed {which}: {trial.describe()}")

    def on_tick(self, epoch: int) -> ThreadsChanged | None:
        if self.trial is not None:
            return None
        if self.retime_at is not None and self.clock() >= self.retime_at:
            self.retime_at = None
            self.trial = ThreadTrial(self.choices)  # it sets the threads from its next step on
            return None
        if self.follower is not None:
            threads = self.follower.threads(self.threads)
            if threads is not None:
                previous, self.threads = self.threads, threads
                torch.set_num_threads(threads)
                return ThreadsChanged(epoch, threads, previous, self.follower.busy_elsewhere)
        return None
