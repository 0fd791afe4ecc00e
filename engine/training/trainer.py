"""The loop: runs of chapter 6's template, with everything a real run needs around it.

`Trainer(settings, listeners, session=...).run()` trains in the calling thread (the console calls it from a
worker thread) and reports only through events to its listeners (engine.listeners). One epoch is
engine.training.loop's; what happens between batches is engine.training.batches'; its decisions (NaN stop,
improvement and early stopping, checkpoint retention) are small policies (engine.training.policies); its
speed-ups are engine.training.accel's. Where the run is kept is the session's (engine.training.session): the
trainer knows no file. The caller steers it through a `RunControl`: stop and pause are flags read between
batches.
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any, Callable, Sequence

import torch

from engine.data.loaders import build_data
from engine.device import resolve_device
from engine.events import Event, RunFailed, RunFinished
from engine.listeners import ListenerLike, Listeners
from engine.models.networks import build_model
from engine.settings.config import Settings, SettingsError
from engine.settings.defaults import resolve_model
from engine.training import accel, snapshot
from engine.training.batches import NAN, STOP, begin_epoch
from engine.training.control import RunControl
from engine.training.distributed import Collectives, Group, ProcessFailed, agent_store, check_shards, device_for
from engine.training.distributed import from_environment, join, leave
from engine.training.epochs import end_epoch, run_started
from engine.training.loop import Position, Scores, Sums, train_epoch, validate
from engine.training.optim import build_optimizer, build_scheduler
from engine.training.policies import CheckpointRetention, Improvement, stop_policies
from engine.training.precision import resolve_precision
from engine.training.probing import RunProbes
from engine.training.regression import criterion_for, task_baseline
from engine.training.saving import Saver, weights_finite
from engine.training.session import NoSession, Session
from engine.training.snapshot import RunState, TrainingParts, seed_everything


class Trainer:
    """One run. Build it, then `run()` (which sets up first: data, model, optimizer, the session's place)."""

    def __init__(self, settings: Settings, listeners: ListenerLike | Sequence[ListenerLike] = (),
                 control: RunControl | None = None, *, session: Session | None = None, set_threads: bool = True,
                 progress_interval_s: float | None = None, follow_free_cores: bool | None = None,
                 group: Group | None = None):
        self.settings = settings
        self.session = session or NoSession()
        self.group = group or from_environment()  # this process's rank among torchrun's (a group of one without it)
        self.progress_interval_s = progress_interval_s  # None: 10 a second; a listener that draws less asks less
        # threads resized to the free cores while training; None: where the trainer sets the threads itself
        self.follow = set_threads if follow_free_cores is None else follow_free_cores
        self.set_threads = set_threads
        single = callable(listeners) or hasattr(listeners, "on_event")
        self.listeners = Listeners([listeners] if single else listeners)
        self.control = control or RunControl()
        self.improvement = Improvement.from_settings(settings.training)
        self.model_reason = resolve_model(settings)[1]  # the header's why, before set-up makes model.name concrete
        self.stop_policies = stop_policies(settings)
        self.ready, self.note, self.run_dir = False, "", None  # note: what the user should know about this start
        self.state = RunState()
        self.partial_epoch: dict[str, Any] | None = None  # the position inside an interrupted epoch, from a resume
        self._nan_stop: str | None = None  # a stop met non-finite weights mid-epoch: the run ends as NaN
        self._epochs_before = 0  # completed epochs when the current one began: a failure belongs to the next

    def add_listener(self, listener: ListenerLike) -> None:
        """Hear this run's events from now on (add before `run()` to hear them all)."""
        self.listeners.add(listener)

    def emit(self, event: Event) -> None:
        self.listeners.emit(event)

    @property
    def threads(self) -> int:
        return self.thread_plan.threads

    # -- set-up ---------------------------------------------------------------
    def setup(self) -> None:
        """Everything that can fail because of the settings: raises SettingsError or CheckpointError.

        In a run of several processes every rank sets up, and only rank 0 opens the session's place; a rank
        whose set-up failed makes every rank raise, so that none waits for it in a collective.
        """
        self.device = device_for(self.group, resolve_device(self.settings.device.device))
        join(self.group, self.device)
        self.collectives = Collectives(self.group, self.device, agent_store() if self.group.active else None)
        checkpoint = self._agreed(self._build)
        self._agreed(lambda: self._prepare(checkpoint))
        self.run_dir = self.collectives.from_main(self.run_dir)
        self.ready = True

    def _agreed(self, step: Callable[[], Any]) -> Any:
        """`step()` of the set-up on every rank; one rank's failure, or death, makes every rank raise."""
        error, result = None, None
        try:
            result = step()
        except BaseException as e:
            error = e
        try:
            failures = self.collectives.gather(str(error) if error is not None else None)
        except Exception as e:  # a rank died at set-up
            _, line, records = self.collectives.failure(error or e)
            error, failures = ProcessFailed(line), []
            if records and not self.group.is_main:  # rank 0 died: its folder, if it made one, records it
                self._record_for_main(RunFailed(line, ProcessFailed.__name__, "", None, self.state.epoch))
        failed = [(rank, text) for rank, text in enumerate(failures) if text is not None]
        if failed and error is None:  # rank 0 says why another rank could not start: only rank 0 prints
            error = SettingsError(f"process {failed[0][0]} of {self.group.world_size}: {failed[0][1]}")
        if error is not None:
            if self.run_dir is not None:  # another rank failed: rank 0's record says why the run never started
                self.session.record_failure(self.run_dir, RunFailed(str(error), type(error).__name__, "", None, 0))
                self.close()
            leave(self.group)
            raise error
        return result

    def _build(self) -> dict | None:
        """The data and the model (no collective yet); the checkpoint a resume starts from."""
        # the record names its data by absolute paths and auto's model: eval and resume work anywhere, alike
        s = self.settings = self.settings.for_run()
        self.amp_dtype, self.precision = resolve_precision(s.training.precision, self.device)
        seed_everything(s.run.seed)
        checkpoint = self.session.load_checkpoint()
        # a resume applies the preprocessing its checkpoint recorded, not one fitted again on today's files
        fitted, shard = snapshot.stored_preprocessing(checkpoint), (self.group.rank, self.group.world_size)
        self.data = build_data(s.data, s.run.seed, self.device, fitted=fitted, shard=shard, task=s.model.task)
        if self.group.active:
            check_shards(self.data, s.data.batch_size, self.group.world_size)
        self.baseline = task_baseline(s, self.data)  # what learning is judged against
        self.model = build_model(s.model, self.data.in_shape, self.data.num_classes).to(self.device)
        accel.speed_up_model(self.model, s)
        self.forward = self.eval_forward = torch.compile(self.model) if s.training.compile else self.model
        return checkpoint

    def _prepare(self, checkpoint: dict | None) -> None:
        """DDP (its first collectives), the optimizer and the step, the resume's state, rank 0's session."""
        s, group, reduce_grads = self.settings, self.group, None
        if group.active:
            fused = accel.fused_step(self.model, self.device, self.amp_dtype, s)
            self.forward, reduce_grads = self.collectives.data_parallel(self.model, fused, s.training.compile)
            if s.run.seed >= 0:  # dropout draws differ between ranks, as their samples do
                torch.manual_seed(s.run.seed + group.rank)
        self.thread_plan = accel.plan_threads(self.model, self.data.in_shape, self.device, s,
                                              set_threads=self.set_threads, follow=self.follow and not group.active,
                                              sharing=group.local_world_size)
        self.criterion = criterion_for(s.training, self.data.task)
        self.optimizer = build_optimizer(self.model, s.training, self.device)
        self.scheduler = build_scheduler(self.optimizer, s.training, len(self.data.train))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.step = accel.plan_step(self.model, self.forward, self.criterion, self.optimizer, self.scaler,
                                    self.amp_dtype, self.device, s, reduce_grads)
        self.parts = TrainingParts(s, self.model, self.optimizer, self.scheduler, self.scaler, self.device,
                                   self.data.generator, self.state, self.data.preprocessing, group.world_size)
        probing = s.diagnostics.probes and s.diagnostics.rules != "chapter"  # the chapter's rules have no probes
        self.probes = RunProbes(self.model, len(self.data.train), self.data.val, self.device) if probing else None
        self.saver = Saver(self.session, self.parts, CheckpointRetention.from_settings(s.checkpoints), self.emit,
                           writes=group.is_main)
        if checkpoint is not None:
            self._resume(checkpoint)
        if group.is_main:
            self.run_dir = self.session.open(s, checkpoint, self.history_rows(), self.control, self.listeners)
            self.collectives.post_run_dir(self.run_dir)

    def _resume(self, checkpoint: dict) -> None:
        source, epochs = str(self.session.resume_from), self.settings.training.epochs
        self.partial_epoch = snapshot.restore(self.parts, checkpoint, source)
        self.partial_epoch, self.note = snapshot.restart_epoch_if_resharded(self.parts, checkpoint, self.partial_epoch)
        if self.state.epoch >= epochs:
            raise SettingsError(
                f"{source}: the run already trained {self.state.epoch} epochs and training.epochs = {epochs}; "
                f"raise it to train longer (e.g. --set training.epochs={self.state.epoch + 10})"
            )

    # -- the run --------------------------------------------------------------
    def run(self) -> Event:
        """Set up (if not done) and train; returns the final RunFinished or RunFailed event.

        Bad settings raise SettingsError/CheckpointError before anything is written.
        """
        if not self.ready:
            self.setup()
        started = time.perf_counter()
        self._epochs_before = self.saver.finite_epoch = self.state.epoch
        agreed = True  # every rank ends the run the same way, and meets the others once more
        try:
            self.emit(run_started(self))
            final: Event = self._finished(*self._train(), started)
        except KeyboardInterrupt:  # a second Ctrl-C, wherever the main thread was (even inside a library call)
            agreed = False
            final = self._finished("stopped", "stopped at once by a second Ctrl-C; last.pth holds the last save",
                                   started)
        except Exception as e:
            final = self._failed(e)
        try:
            self.listeners.emit(final, final=True)  # a disk that failed the run may not take it; the rest hear it
        finally:
            self.close()
            if agreed and isinstance(final, RunFinished):  # every rank ended alike: none is left in a collective
                try:
                    self.collectives.barrier()
                except Exception:  # a rank that died after the run finished changes nothing of it
                    pass
            leave(self.group)
        return final

    def _train(self) -> tuple[str, str]:
        epochs = self.settings.training.epochs
        while self.state.epoch < epochs:
            t0, self._epochs_before = time.perf_counter(), self.state.epoch
            trained = self._train_epoch()
            if trained is None:
                return ("nan", self._nan_stop) if self._nan_stop else ("stopped", self.control.reason or "stopped")
            (train, samples_per_s), paused_s = trained
            val = self.evaluate()
            seconds = time.perf_counter() - t0 - paused_s
            epoch = end_epoch(self, train, val, samples_per_s, seconds)
            for policy in self.stop_policies:
                decision = policy.after_epoch(self.state, epoch)
                if decision is not None:
                    return decision.status, decision.reason
            if self.collectives.any(self.control.stop_requested)[0]:
                return "stopped", self.control.reason or "stopped"
        return "completed", f"trained {epochs} epoch{'s' * (epochs != 1)}"

    def _train_epoch(self) -> tuple[tuple[Scores, float], float] | None:
        """One pass over the training split and its paused seconds; None when stopped (last.pth is saved)."""
        at, sums, batches, watch, epoch_start = begin_epoch(self)
        per_batch_scheduler = self.settings.training.scheduler == "onecycle"
        if watch.steer() == STOP:
            return self._stop_mid_epoch(at, sums, watch.seconds(), epoch_start)
        for at in train_epoch(self.model, batches, self.step, sums, at, self.device):
            if per_batch_scheduler:
                self.scheduler.step()
            if self.probes is not None:
                self.probes.after_step(at.batch)
            verdict = watch.between()
            if verdict == STOP:
                return self._stop_mid_epoch(at, sums, watch.seconds(), epoch_start)
            if verdict == NAN:
                break  # the epoch ends now and is reported as NaN
        scores = sums.scores(self.collectives, self.data.preprocessing.target)  # exact: sums over the ranks
        return (scores, scores.seen / max(watch.seconds(), 1e-9)), watch.paused_s

    def _stop_mid_epoch(self, at: Position, sums: Sums, seconds: float, epoch_start: torch.Tensor) -> None:
        """A stop between batches: last.pth holds the exact position, unless the weights are no longer finite."""
        partial = {**sums.reduced(self.collectives, self.data.task == "regression"), "seconds": seconds}
        if not (math.isfinite(partial["loss_sum"]) and weights_finite(self.model)):
            self._nan_stop = f"stopped at batch {at.batch} of epoch {at.epoch}, not finite: {self.saver.kept_note()}"
            return None
        self.saver.save(snapshot.make_checkpoint(self.parts, at.batch, partial, epoch_start), "last.pth", "last")
        return None

    def evaluate(self) -> Scores:
        """The validation phase (engine.training.loop.validate), each rank its share, summed once."""
        # not through DDP: ranks hold different numbers of validation batches
        sums = validate(self.model, self.eval_forward, self.data.val, self.criterion, self.device, self.amp_dtype)
        return sums.scores(self.collectives, self.data.preprocessing.target)

    # -- the end --------------------------------------------------------------
    def _finished(self, status: str, reason: str, started: float) -> RunFinished:
        st = self.state
        return RunFinished(status, reason, st.epoch, st.best_epoch, st.best_value, self.settings.training.monitor,
                           str(self.run_dir or ""), time.perf_counter() - started)

    def _failed(self, e: Exception) -> RunFailed:
        error, error_type, records = f"{type(e).__name__}: {e}", type(e).__name__, False
        if self.group.active:  # who failed first, and how: a peer's collective fails with "Connection closed"
            failed_rank, error, records = self.collectives.failure(e)
            error_type = error_type if failed_rank == self.group.rank else ProcessFailed.__name__
        final = RunFailed(error, error_type, traceback.format_exc(), str(self.run_dir or ""), self._epochs_before)
        if records and not self.group.is_main:
            self._record_for_main(final)
        return final

    def _record_for_main(self, final: RunFailed) -> None:
        """The failure of a run whose rank 0 died, recorded by the first rank alive in rank 0's place."""
        run_dir = self.collectives.main_run_dir()
        if run_dir is not None:  # else rank 0 died before it made a folder: nothing was written
            self.session.record_failure(run_dir, final)

    def close(self) -> None:
        """The end of the run for every listener (the recorder closes its files), then the session's."""
        self.listeners.close()
        self.session.close()

    def history_rows(self) -> list[dict[str, Any]]:
        return snapshot.history_rows(self.state.history)
