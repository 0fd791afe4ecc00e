"""The loop: one run of chapter 6's template, with everything a real run needs.

`Trainer(settings, listeners).run()` trains in the calling thread (the console
calls it from a worker thread) and reports only through events to its
listeners (engine.listeners). Its decisions (NaN stop, early stopping,
checkpoint retention, CPU threads) are small policies (engine.training.policies). The
caller steers it through a `RunControl`: stop and pause are flags the loop
reads between batches.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from engine.runs import checkpoints as ck
from engine.training import snapshot
from engine.io.atomic import remove_stale_temporaries
from engine.settings.config import Settings, SettingsError, to_toml
from engine.training.control import RunControl
from engine.data.loaders import DataBundle, build_data
from engine.device import device_name, resolve_device, thread_choices, training_step_flops
from engine.training.diagnostics import diagnose, overfitting_onset
from engine.training.distributed import (
    Collectives,
    Group,
    ProcessFailed,
    agent_store,
    device_for,
    from_environment,
    join,
    leave,
)
from engine.events import (
    BatchProgressed,
    CheckpointSaved,
    EpochCompleted,
    Event,
    RunFailed,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStarted,
)
from engine.listeners import ListenerLike, Listeners
from engine.models.networks import build_model, count_parameters
from engine.training.optim import build_optimizer, build_scheduler
from engine.runs.commands import CommandWatcher, open_channel
from engine.runs.status import StatusWriter
from engine.outputs import run_folder_writers
from engine.training.policies import CheckpointRetention, stop_policies
from engine.runs.folder import (
    RunLock,
    RunRecorder,
    check_run_folder,
    checkpoints_dir,
    create_run_dir,
    discard_new_run_dir,
    write_run_file,
)
from engine.training.snapshot import HISTORY_KEYS, RunState, TrainingParts
from engine.training.steps import autocast, build_step, fused_step_applies, resolve_precision
from engine.training.threads import ThreadPlan

PROGRESS_INTERVAL_S = 0.1  # BatchProgressed at most 10 times a second
# in a run of several processes the ranks agree on stop, pause and NaN every this many batches (one small
# collective); a stop takes effect within as many batches
SYNC_EVERY = 8


def seed_everything(seed: int) -> None:
    if seed < 0:
        return
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def check_shards(data: DataBundle, batch_size: int, world: int) -> None:
    """Every process gets a whole batch to train on and a validation sample: else one line, before anything starts."""
    train, val = data.train.num_samples, data.val.num_samples
    if train < world * batch_size:
        raise SettingsError(
            f"{train} training samples are too few for {world} processes at data.batch_size = {batch_size} "
            f"(each process trains on a batch of its own: {world * batch_size} samples a step); "
            "use fewer processes or a smaller batch_size"
        )
    if 0 < val < world:
        raise SettingsError(
            f"{val} validation sample(s) are too few for {world} processes (each validates a share of its own); "
            "use fewer processes or a larger data.val_fraction"
        )


class Trainer:
    """One run. Build it (validates and loads everything), then `run()`."""

    def __init__(
        self,
        settings: Settings,
        listeners: ListenerLike | Sequence[ListenerLike] = (),
        control: RunControl | None = None,
        *,
        resume_from: str | Path | None = None,
        set_threads: bool = True,
        progress_interval_s: float | None = None,
        follow_free_cores: bool | None = None,
        into: str | Path | None = None,
        group: Group | None = None,
    ):
        self.settings = settings
        self.group = group or from_environment()  # this process's rank among torchrun's (a group of one without it)
        self.progress_interval_s = (
            progress_interval_s  # None: PROGRESS_INTERVAL_S; a listener that draws less often asks for less
        )
        # threads resized to the free cores while training (CoreWatch); None: where the trainer sets the threads itself
        self.follow_free_cores = follow_free_cores
        self.thread_plan = ThreadPlan((torch.get_num_threads(),), follow=False)
        self.listeners = Listeners([listeners] if callable(listeners) or hasattr(listeners, "on_event") else listeners)
        self.stop_policies = stop_policies(settings)
        self.retention = CheckpointRetention.from_settings(settings.checkpoints)
        self.control = control or RunControl()
        self.resume_from = Path(resume_from) if resume_from else None
        self.into = Path(into) if into else None  # a run folder made for this run beforehand (a detached run's)
        self.set_threads = set_threads
        self.recorder: RunRecorder | None = None
        self.folder_open = False  # rank 0 holds the run folder, with its recorder
        self.ready = False
        self.note = ""  # for RunStarted: what the user should know about this start
        self.run_dir: Path | None = None
        self.state = RunState()
        self._partial: dict[str, Any] | None = None
        self._paused_s = 0.0  # paused time in the current epoch
        self._epochs_before = 0  # completed epochs when the current one began: a failure while saving it belongs to it
        self._finite_epoch = 0  # the last epoch the checkpoints were written at (never from NaN weights)
        self._nan_stop: str | None = None  # a stop met non-finite weights mid-epoch: the run ends as NaN

    # -- events -------------------------------------------------------------
    def add_listener(self, listener: ListenerLike) -> None:
        """Hear this run's events from now on (add before `run()` to hear them all)."""
        self.listeners.add(listener)

    def emit(self, event: Event) -> None:
        self.listeners.emit(event)

    def emit_if(self, event: Event | None) -> None:
        if event is not None:
            self.emit(event)

    @property
    def threads(self) -> int:
        """The torch threads it trains on now (engine.training.threads)."""
        return self.thread_plan.threads

    # -- set-up ---------------------------------------------------------------
    def setup(self) -> None:
        """Everything that can fail because of the settings: raises SettingsError or CheckpointError.

        In a run of several processes every rank sets up, and only rank 0 takes the run folder; a rank whose
        set-up failed makes every rank raise, so that none waits for it in a collective. The ranks agree on
        that twice: after the data and the model, before DDP's first collective, and at the end.
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
        error: BaseException | None = None
        result = None
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
        if failed and error is None:
            rank, text = failed[0]  # rank 0 says why another rank could not start: only rank 0 prints
            error = SettingsError(f"process {rank} of {self.group.world_size}: {text}")
        if error is not None:
            if self.folder_open:  # another rank failed: rank 0's folder says why the run never started
                self.recorder.on_event(RunFailed(str(error), type(error).__name__, "", str(self.run_dir), 0))
                self.close()
            leave(self.group)
            raise error
        return result

    def _build(self) -> dict | None:
        """The data and the model (no collective yet); the checkpoint a resume starts from."""
        # the run's record (settings.toml, checkpoints) names its data by absolute paths: eval and resume work anywhere
        s = self.settings = self.settings.with_resolved_paths()
        group = self.group
        self.amp_dtype, self.precision = resolve_precision(s.training.precision, self.device)
        seed_everything(s.run.seed)
        checkpoint = ck.load_checkpoint(self.resume_from) if self.resume_from else None
        # a resume applies the preprocessing its checkpoint recorded, not one fitted again on today's files
        fitted = snapshot.stored_preprocessing(checkpoint)
        shard = (group.rank, group.world_size)
        self.data: DataBundle = build_data(s.data, s.run.seed, self.device, fitted=fitted, shard=shard)
        if group.active:
            check_shards(self.data, s.data.batch_size, group.world_size)
        self.model = build_model(s.model, self.data.in_shape, self.data.num_classes).to(self.device)
        self.forward = self.eval_forward = torch.compile(self.model) if s.training.compile else self.model
        return checkpoint

    def _prepare(self, checkpoint: dict | None) -> None:
        """DDP (its first collectives), the optimizer and the rest of the step, the resume's state, rank 0's folder."""
        s, group = self.settings, self.group
        reduce_grads = None
        if group.active:
            fused = s.training.fused_step and fused_step_applies(
                self.model, self.device, self.amp_dtype, s.training.compile
            )
            self.forward, reduce_grads = self.collectives.data_parallel(self.model, fused, s.training.compile)
            if s.run.seed >= 0:  # dropout draws differ between ranks, as their samples do
                torch.manual_seed(s.run.seed + group.rank)
        self.thread_plan = self._plan_threads()
        self.criterion = nn.CrossEntropyLoss(label_smoothing=s.training.label_smoothing)
        self.optimizer = build_optimizer(self.model, s.training, self.device)
        self.scheduler = build_scheduler(self.optimizer, s.training, len(self.data.train))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.step = build_step(
            self.model,
            self.forward,
            self.criterion,
            self.optimizer,
            self.scaler,
            self.amp_dtype,
            self.device,
            grad_clip=s.training.grad_clip,
            label_smoothing=s.training.label_smoothing,
            fused=s.training.fused_step,
            reduce_grads=reduce_grads,
        )
        self.parts = TrainingParts(
            s,
            self.model,
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.device,
            self.data.generator,
            self.state,
            self.data.preprocessing,
            group.world_size,
        )
        if checkpoint is not None:
            self._partial = snapshot.restore(self.parts, checkpoint, str(self.resume_from))
            self._partial, self.note = snapshot.restart_epoch_if_resharded(self.parts, checkpoint, self._partial)
            if self.state.epoch >= s.training.epochs:
                raise SettingsError(
                    f"{self.resume_from}: the run already trained {self.state.epoch} epochs "
                    f"and training.epochs = {s.training.epochs}; "
                    f"raise it to train longer (e.g. --set training.epochs={self.state.epoch + 10})"
                )
        if group.is_main:  # rank 0 alone writes the run folder
            self._open_run_folder(checkpoint)

    def _plan_threads(self) -> ThreadPlan:
        """The CPU threads: the counts the first steps are timed on (one count where the caller set them)."""
        s, group = self.settings, self.group
        choices: tuple[int, ...] = (torch.get_num_threads(),)
        if self.set_threads and self.device.type == "cpu":
            sample = torch.zeros((1, *self.data.in_shape), device=self.device)
            flops = training_step_flops(self.model, sample, s.data.batch_size) if not s.device.threads else None
            choices = thread_choices(s.device.threads, flops, sharing=group.local_world_size)
            torch.set_num_threads(choices[0])
        follow = self.set_threads if self.follow_free_cores is None else self.follow_free_cores
        # the ranks on a machine would take each other for busy processes; `device.threads` is the most it uses
        return ThreadPlan(choices, follow and not group.active and self.device.type == "cpu")

    def _open_run_folder(self, checkpoint: dict | None) -> None:
        """The run folder (a new one, or the resumed run's), locked, with the listeners that write into it."""
        s = self.settings
        in_run_folder = self.resume_from is not None and self.resume_from.parent.name == "checkpoints"
        # a checkpoint copied out of its run folder continues in a new folder, never in its parent
        if in_run_folder:
            self.run_dir = self.resume_from.parent.parent
        else:
            self.run_dir = self.into or create_run_dir(s.run.runs_dir, s.run.name)
        try:
            check_run_folder(self.run_dir)  # a downloaded run folder's symlinks are refused before anything is written
            self.lock = RunLock(self.run_dir)
            self.lock.acquire()
            remove_stale_temporaries(checkpoints_dir(self.run_dir))
            write_run_file(self.run_dir / "settings.toml", to_toml(s))  # the run's record, rewritten whole on resume
            self.recorder = RunRecorder(self.run_dir)
            self.listeners.add(self.recorder, first=True)  # the run's own record hears every event before the others
            if checkpoint is not None:
                self.recorder.rewrite_metrics(self._history_rows())
            self.listeners.add(StatusWriter(self.run_dir))
            if self.into is None:  # a detached run's channel was opened before its process started
                open_channel(self.run_dir)
            self.collectives.post_run_dir(self.run_dir)
            self.folder_open = True
            self.listeners.add(CommandWatcher(self.run_dir, self.control, self.emit))
            for writer in run_folder_writers(s, self.run_dir):
                self.listeners.add(writer)
        except BaseException:
            self.folder_open = False  # closed with the listeners: nothing more is recorded in it
            self.close()
            if not in_run_folder and self.into is None:  # a new folder that never started a run is not left behind
                discard_new_run_dir(self.run_dir)
            raise

    def _weights_finite(self) -> bool:
        tensors = [t for t in (*self.model.parameters(), *self.model.buffers()) if t.is_floating_point()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True

    def _kept_note(self) -> str:
        """No checkpoint is written from non-finite weights: what the files hold instead."""
        held = f"the checkpoints keep epoch {self._finite_epoch}" if self._finite_epoch else "none is written"
        return f"no checkpoint written from non-finite weights ({held})"

    def _save(self, obj: Any, name: str, kind: str) -> None:
        if not self.group.is_main:
            return
        path = checkpoints_dir(self.run_dir) / name  # checked at each save: the folder may have been swapped for a link
        ck.atomic_save(obj, path)
        monitor = self.settings.training.monitor
        h = self.state.history
        value = h[monitor][-1] if h[monitor] else float("nan")
        self.emit(CheckpointSaved(self.state.epoch, str(path), kind, monitor, value))

    def _save_epoch_checkpoints(self, is_best: bool) -> None:
        if not self.group.is_main:
            return
        if is_best:
            self._save(self.model.state_dict(), "best.pth", "best")
        full = snapshot.make_checkpoint(self.parts)
        if self.retention.keeps(self.state.epoch):
            self._save(full, f"epoch_{self.state.epoch}.pth", "epoch")
            folder = checkpoints_dir(self.run_dir)
            numbered = [n for n in map(ck.epoch_of_name, folder.glob("epoch_*.pth")) if n is not None]
            for epoch in self.retention.to_remove(numbered):  # the new file is written before an old one goes
                (folder / f"epoch_{epoch}.pth").unlink(
                    missing_ok=True
                )  # a symlink itself goes, never what it points to
        self._save(full, "last.pth", "last")

    # -- the loop -------------------------------------------------------------
    def run(self) -> Event:
        """Set up (if not done) and train; returns the final RunFinished or RunFailed event.

        Bad settings raise SettingsError/CheckpointError before anything is written.
        """
        if not self.ready:
            self.setup()
        started = time.perf_counter()
        self._epochs_before = self._finite_epoch = self.state.epoch
        agreed = True  # every rank ends the run the same way, and meets the others once more
        try:
            self._emit_started()
            status, reason = self._train()
            final: Event = self._finished(status, reason, started)
        except KeyboardInterrupt:  # a second Ctrl-C, wherever the main thread was (even inside a library call)
            agreed = False
            reason = "stopped at once by a second Ctrl-C; last.pth holds the last save"
            final = self._finished("stopped", reason, started)
        except Exception as e:
            error, error_type, records = f"{type(e).__name__}: {e}", type(e).__name__, False
            if self.group.active:  # who failed first, and how: a peer's collective fails with "Connection closed"
                failed_rank, error, records = self.collectives.failure(e)
                error_type = error_type if failed_rank == self.group.rank else ProcessFailed.__name__
            final = RunFailed(error, error_type, traceback.format_exc(), str(self.run_dir), self._epochs_before)
            if records and not self.group.is_main:
                self._record_for_main(final)
        try:
            self._emit_final(final)
        finally:
            self.close()
            if agreed and isinstance(final, RunFinished):  # every rank ended the same way: none is left in a collective
                try:
                    self.collectives.barrier()
                except Exception:  # a rank that died after the run finished changes nothing of it
                    pass
            leave(self.group)
        return final

    def _finished(self, status: str, reason: str, started: float) -> RunFinished:
        st = self.state
        return RunFinished(
            status,
            reason,
            st.epoch,
            st.best_epoch,
            st.best_value,
            self.settings.training.monitor,
            str(self.run_dir),
            time.perf_counter() - started,
        )

    def _record_for_main(self, final: RunFailed) -> None:
        """The failure of a run whose rank 0 died, recorded by the first rank alive in rank 0's run folder."""
        run_dir = self.collectives.main_run_dir()
        if run_dir is None:
            return  # rank 0 died before it made a folder: nothing was written
        try:
            recorder = RunRecorder(run_dir)  # a line rank 0 left half-written is ended first
            recorder.on_event(replace(final, run_dir=str(run_dir)))
            recorder.close()
            StatusWriter(run_dir).on_event(final)
        except (OSError, ValueError):
            pass  # the launcher's line still says it

    def _emit_final(self, final: Event) -> None:
        """The run's last event: a disk that failed the run may not take its record; every listener still hears it."""
        self.listeners.emit(final, final=True)

    def close(self) -> None:
        """The end of the run for every listener (the recorder closes its files), then the run folder's lock."""
        self.listeners.close()
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def _emit_started(self) -> None:
        s = self.settings
        self.emit(
            RunStarted(
                str(self.run_dir),
                s.to_dict(),
                str(self.device),
                device_name(self.device),
                count_parameters(self.model),
                self.data.train.num_samples,
                self.data.val.num_samples,
                len(self.data.train),
                self.data.description,
                self.precision,
                self.state.epoch,
                s.training.epochs,
                self.threads,
                self.step.description,
                self.group.world_size,
                self.note,
            )
        )

    def _train(self) -> tuple[str, str]:
        s = self.settings.training
        while self.state.epoch < s.epochs:
            t0, self._paused_s, self._epochs_before = time.perf_counter(), 0.0, self.state.epoch
            train = self._train_epoch()
            if train is None:
                return ("nan", self._nan_stop) if self._nan_stop else ("stopped", self.control.reason or "stopped")
            train_loss, train_acc, samples_per_s = train
            val_loss, val_acc = self.evaluate()
            epoch = self._end_epoch(
                train_loss, train_acc, val_loss, val_acc, samples_per_s, time.perf_counter() - t0 - self._paused_s
            )
            for policy in self.stop_policies:
                decision = policy.after_epoch(self.state, epoch)
                if decision is not None:
                    return decision.status, decision.reason
            if self.collectives.any(self.control.stop_requested)[0]:
                return "stopped", self.control.reason or "stopped"
        return "completed", f"trained {s.epochs} epoch{'s' * (s.epochs != 1)}"

    def _train_epoch(self) -> tuple[float, float, float] | None:
        """One pass over the training split; None when stopped mid-epoch (last.pth then holds the exact position)."""
        model, step, device, control, group = self.model, self.step, self.device, self.control, self.group
        stop_on_nan = self.settings.training.stop_on_nan
        per_batch_scheduler = self.settings.training.scheduler == "onecycle"
        batches = len(self.data.train)
        epoch = self.state.epoch + 1
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen, skip, elapsed_before = 0, 0, 0.0
        partial, self._partial = self._partial, None
        if partial is not None:
            self.data.generator.set_state(partial["data_epoch_start"])
            skip, elapsed_before = partial["batch"], partial["seconds"]
            if group.is_main:  # the sums of all ranks so far: counted once when the ranks' sums are added up
                loss_sum += partial["loss_sum"]
                correct += partial["correct"]
                seen = partial["seen"]
        epoch_start = self.data.generator.get_state()
        batches_iter = iter(self.data.train)
        if (
            partial is not None
        ):  # resuming mid-epoch: replay the epoch's data order (and augmentation draws) up to where it stopped
            for _ in range(skip):
                next(batches_iter)
            snapshot.set_global_rng(partial["rng"], device)
        seen_at_start = seen
        interval = PROGRESS_INTERVAL_S if self.progress_interval_s is None else self.progress_interval_s
        start = last_tick = time.perf_counter()
        i = ticked = skip  # batches done, and done at the last BatchProgressed

        def tick(now: float) -> float:
            running = float(loss_sum) / max(seen, 1)  # the throttled tick is the only sync inside an epoch
            rate = (seen - seen_at_start) * group.world_size / max(now - start, 1e-9)  # all ranks, as rank 0's pace
            self.emit(
                BatchProgressed(epoch, i, batches, rate, (batches - i) * (now - start) / max(i - skip, 1), running)
            )
            return running

        while True:
            # checked before the next batch is drawn: its augmentation may draw from the global RNG, saved below
            stop, paused = control.stop_requested, control.paused
            if group.active:  # ranks act on what they agree on, at the same batch
                stop = paused = False
                if (i - skip) % SYNC_EVERY == 0:
                    nan = stop_on_nan and i > skip and not bool(torch.isfinite(loss_sum))
                    stop, paused, nan = self.collectives.any(control.stop_requested, control.paused, nan)
                    if nan:
                        break  # the epoch ends now on every rank and is reported as NaN
            if stop or paused:
                if i > ticked:  # watchers see the exact batch the run pauses or stops at
                    ticked = i
                    tick(time.perf_counter())
                if paused:
                    waited, stop = self._wait_paused(epoch, i)
                    start += waited
                if stop:
                    loss_total, correct_total, seen_total = self.collectives.sums(loss_sum, correct, seen)
                    if not (math.isfinite(loss_total) and self._weights_finite()):
                        self._nan_stop = f"stopped at batch {i} of epoch {epoch}, not finite: {self._kept_note()}"
                        return None
                    partial = {
                        "loss_sum": loss_total,
                        "correct": int(correct_total),
                        "seen": int(seen_total),
                        "seconds": elapsed_before + time.perf_counter() - start,
                    }
                    self._save(snapshot.make_checkpoint(self.parts, i, partial, epoch_start), "last.pth", "last")
                    return None
            step_started = time.perf_counter()
            batch = next(batches_iter, None)
            if batch is None:
                break
            i += 1
            xb, yb = batch
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            loss, out = step(xb, yb)
            if per_batch_scheduler:
                self.scheduler.step()
            n = yb.shape[0]
            seen += n
            loss_sum.add_(loss.float(), alpha=n)  # stays on the device: no sync per batch
            correct += (out.argmax(1) == yb).sum()
            now = time.perf_counter()
            if self.thread_plan.trial is not None:
                self.emit_if(self.thread_plan.after_step(epoch, now - step_started))
            if now - last_tick >= interval or i == batches:
                last_tick, ticked = now, i
                running = tick(now)
                self.emit_if(self.thread_plan.on_tick(epoch))
                if not math.isfinite(running) and stop_on_nan and not group.active:
                    break  # the epoch ends now and is reported as NaN
        seconds = elapsed_before + time.perf_counter() - start
        loss_sum, correct, seen = self.collectives.sums(loss_sum, correct, seen)  # as sums and counts: exact
        if seen == 0:
            return float("nan"), 0.0, 0.0
        return loss_sum / seen, correct / seen, seen / max(seconds, 1e-9)

    def _wait_paused(self, epoch: int, batch: int) -> tuple[float, bool]:
        """Block while paused (on any rank); the seconds it waited, which the epoch's time leaves out, and a stop."""
        started = time.perf_counter()
        self.emit(RunPaused(epoch, batch))
        control, paused, stop = self.control, True, False
        while paused:
            if control.paused:
                control.wait_while_paused()
            else:  # another rank is paused: this one waits with it, and checks again with the others
                control.wait_for_stop(0.2)
            stop, paused = self.collectives.any(control.stop_requested, control.paused)
        if not stop:
            self.emit(RunResumed(epoch, batch))
        waited = time.perf_counter() - started
        self._paused_s += waited
        return waited, stop

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Chapter 6.1's validation phase: eval mode, no_grad, sample-weighted mean loss and accuracy."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        for xb, yb in self.data.val:
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            with autocast(self.device, self.amp_dtype):
                out = self.eval_forward(xb)  # not through DDP: ranks hold different numbers of validation batches
                loss = self.criterion(out, yb)
            loss_sum += loss.float() * yb.shape[0]
            correct += (out.argmax(1) == yb).sum()
            seen += yb.shape[0]
        loss_sum, correct, seen = self.collectives.sums(loss_sum, correct, seen)  # each rank its share, once
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False  # a NaN epoch never becomes best
        best = self.state.best_value
        if best is None:
            return True
        return value < best if self.settings.training.monitor.endswith("loss") else value > best

    def _end_epoch(self, train_loss, train_acc, val_loss, val_acc, samples_per_s, seconds) -> EpochCompleted:
        """Chapter 8's bookkeeping of an epoch: best model, scheduler, checkpoints, diagnostic.

        Returns its event, heard by every listener.
        """
        st, s = self.state, self.settings
        st.epoch += 1
        finished = (
            time.time()
        )  # the epoch's wall-clock time, kept in the history so a resume can rewrite metrics.jsonl whole
        lr = self.optimizer.param_groups[0]["lr"]
        diagnostic = diagnose(st.epoch, train_loss, val_loss, train_acc, val_acc, s.diagnostics, self.data.label_counts)
        values = {"train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc, "val_acc": val_acc}
        finite = math.isfinite(train_loss) and math.isfinite(val_loss) and self._weights_finite()
        if not finite:  # a NaN epoch never becomes best, and writes no checkpoint
            reason = diagnostic.message if diagnostic.status == "nan" else f"non-finite weights at epoch {st.epoch}"
            diagnostic = replace(diagnostic, status="nan", message=f"{reason}; {self._kept_note()}")
        is_best = finite and self._improved(values[s.training.monitor])
        if is_best:
            st.best_epoch, st.best_value, st.bad_epochs = st.epoch, values[s.training.monitor], 0
        else:
            st.bad_epochs += 1
        for k, v in {
            **values,
            "lr": lr,
            "seconds": seconds,
            "samples_per_s": samples_per_s,
            "diagnostic": diagnostic.status,
            "is_best": is_best,
            "time": finished,
        }.items():
            st.history[k].append(v)
        self._step_scheduler(values[s.training.monitor])
        if finite:
            self._save_epoch_checkpoints(is_best)
            self._finite_epoch = st.epoch
        onset = overfitting_onset(st.history["val_loss"], s.diagnostics)
        event = EpochCompleted(
            st.epoch,
            s.training.epochs,
            train_loss,
            val_loss,
            train_acc,
            val_acc,
            lr,
            seconds,
            samples_per_s,
            diagnostic,
            is_best,
            onset,
            time=finished,
        )
        self.emit(event)
        return event

    def _step_scheduler(self, monitored: float) -> None:
        sch = self.scheduler
        if sch is None or self.settings.training.scheduler == "onecycle":
            return
        if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if math.isfinite(monitored):
                sch.step(monitored)
        else:
            sch.step()

    def _history_rows(self) -> list[dict[str, Any]]:
        h = self.state.history
        return [{"epoch": i + 1, **{k: h[k][i] for k in HISTORY_KEYS}} for i in range(len(h["train_loss"]))]
