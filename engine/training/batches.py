"""What happens between two batches: progress, CPU thread trials, pause and stop, and in a run of several
processes the ranks' agreement on them. The loop (engine.training.loop) asks `between()` after each batch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from engine.events import BatchProgressed, Event, RunPaused, RunResumed
from engine.training.accel.threads import ThreadPlan
from engine.training.control import RunControl
from engine.training.distributed import Collectives, Group
from engine.training.loop import Position, Sums
from engine.training.snapshot import set_global_rng

PROGRESS_INTERVAL_S = 0.1  # BatchProgressed at most 10 times a second
# in a run of several processes the ranks agree on stop, pause and NaN every this many batches (one small
# collective); a stop takes effect within as many batches
SYNC_EVERY = 8

GO_ON, STOP, NAN = "go on", "stop", "nan"
PACE_EPOCHS = 3  # the run ETA's pace: the mean time of the last this many epochs


@dataclass(frozen=True)
class RunHorizon:
    """What the run's ETA needs besides this epoch's batch rate: the epochs left after it, and their pace."""

    epochs_after: int
    epoch_s: float | None  # an epoch's time, validation included, from the last ones; None before one has ended
    at_most: bool = False  # early stopping may end the run sooner

    def run_eta(self, epoch_eta: float, batches: int, batch_s: float) -> float:
        """This epoch's remaining time and the epochs after it: at the last epochs' pace, else at this batch rate."""
        per_epoch = self.epoch_s if self.epoch_s is not None else batches * batch_s
        return epoch_eta + self.epochs_after * per_epoch

    @classmethod
    def of(cls, t: Any, epoch: int) -> RunHorizon:
        """From the trainer: its settings' epochs, its history's epoch times (a resumed run's included)."""
        recent = [s for s in t.state.history.get("seconds", []) if isinstance(s, (int, float))][-PACE_EPOCHS:]
        epoch_s = sum(recent) / len(recent) if recent else None
        return cls(max(t.settings.training.epochs - epoch, 0), epoch_s, t.improvement.patience > 0)


class BatchWatch:
    """One epoch's watch between batches. `seconds()` is its training time so far, pauses left out."""

    def __init__(self, at: Position, sums: Sums, *, emit: Callable[[Event], None], control: RunControl,
                 collectives: Collectives, group: Group, threads: ThreadPlan, interval: float | None,
                 stop_on_nan: bool, seconds_before: float = 0.0, horizon: RunHorizon | None = None):
        self.at, self.sums, self.emit, self.control = at, sums, emit, control
        self.collectives, self.group, self.threads = collectives, group, threads
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.stop_on_nan, self.seconds_before = stop_on_nan, seconds_before
        self.horizon = horizon or RunHorizon(0, None)
        self.skip = self.ticked = at.batch  # batches done before this watch, and at the last BatchProgressed
        self.seen_at_start = sums.seen
        self.start = self.last_tick = self.step_started = time.perf_counter()
        self.paused_s = 0.0

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start

    def between(self) -> str:
        """After a batch: GO_ON, STOP (last.pth is the caller's to save) or NAN (the epoch ends now)."""
        now = time.perf_counter()
        if self.threads.trial is not None:
            self._emit_if(self.threads.after_step(self.at.epoch, now - self.step_started))
        verdict = GO_ON
        if now - self.last_tick >= self.interval or self.at.batch == self.at.batches:
            running = self._tick(now)
            self._emit_if(self.threads.on_tick(self.at.epoch))
            if not math.isfinite(running) and self.stop_on_nan and not self.group.active:
                verdict = NAN
        if verdict == GO_ON:
            verdict = self.steer()
        self.step_started = time.perf_counter()  # the next step's time includes drawing its batch
        return verdict

    def steer(self) -> str:
        """Pause and stop, as asked of this process or, with several, as the ranks agree at the same batch.

        Asked after each batch, and once before the epoch's first: a stop then keeps the epoch's shuffle.
        """
        control, at = self.control, self.at
        stop, paused = control.stop_requested, control.paused
        if self.group.active:
            stop = paused = False
            if (at.batch - self.skip) % SYNC_EVERY == 0:
                nan = self.stop_on_nan and at.batch > self.skip and not bool(self.sums.loss_sum.isfinite())
                stop, paused, nan = self.collectives.any(control.stop_requested, control.paused, nan)
                if nan:
                    return NAN
        if not (stop or paused):
            return GO_ON
        if at.batch > self.ticked:  # watchers see the exact batch the run pauses or stops at
            self._tick(time.perf_counter())
        if paused:
            stop = self._wait_paused()
        return STOP if stop else GO_ON

    def _tick(self, now: float) -> float:
        at, sums = self.at, self.sums
        self.last_tick, self.ticked = now, at.batch
        running = sums.running_loss()  # the throttled tick is the only sync inside an epoch
        rate = (sums.seen - self.seen_at_start) * self.group.world_size / max(now - self.start, 1e-9)
        batch_s = (now - self.start) / max(at.batch - self.skip, 1)
        eta = (at.batches - at.batch) * batch_s
        run_eta = self.horizon.run_eta(eta, at.batches, batch_s)
        self.emit(BatchProgressed(at.epoch, at.batch, at.batches, rate, eta, running, run_eta, self.horizon.at_most))
        return running

    def _wait_paused(self) -> bool:
        """Block while paused (on any rank); the waiting is left out of the epoch's time. Whether to stop."""
        started = time.perf_counter()
        self.emit(RunPaused(self.at.epoch, self.at.batch))
        control, paused, stop = self.control, True, False
        while paused:
            if control.paused:
                control.wait_while_paused()
            else:  # another rank is paused: this one waits with it, and checks again with the others
                control.wait_for_stop(0.2)
            stop, paused = self.collectives.any(control.stop_requested, control.paused)
        if not stop:
            self.emit(RunResumed(self.at.epoch, self.at.batch))
        waited = time.perf_counter() - started
        self.start += waited
        self.paused_s += waited
        return stop

    def _emit_if(self, event: Event | None) -> None:
        if event is not None:
            self.emit(event)


def begin_epoch(t: Any) -> tuple[Position, Sums, Iterator, BatchWatch, torch.Tensor]:
    """The epoch's position, sums, batches and watch: from its start, or where a resumed run stopped in it."""
    at, sums, seconds_before = Position(t.state.epoch + 1, len(t.data.train)), Sums(t.device), 0.0
    partial, t.partial_epoch = t.partial_epoch, None
    if partial is not None:
        t.data.generator.set_state(partial["data_epoch_start"])
        at.batch, seconds_before = partial["batch"], partial["seconds"]
        if t.group.is_main:  # the sums of all ranks so far: counted once when the ranks' sums are added up
            sums = Sums(t.device, partial["loss_sum"], partial["correct"], partial["seen"], partial.get("errors"))
    epoch_start, batches = t.data.generator.get_state(), iter(t.data.train)
    if partial is not None:  # replay the epoch's data order (and augmentation draws) up to where it stopped
        for _ in range(at.batch):
            next(batches)
        set_global_rng(partial["rng"], t.device)
    watch = BatchWatch(at, sums, emit=t.emit, control=t.control, collectives=t.collectives,
                       group=t.group, threads=t.thread_plan, interval=t.progress_interval_s,
                       stop_on_nan=t.settings.training.stop_on_nan, seconds_before=seconds_before,
                       horizon=RunHorizon.of(t, at.epoch))
    return at, sums, batches, watch, epoch_start
