"""What the headless CLI prints: chapter 8.3's epoch lines, a live progress line on terminals, or JSON events."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

from engine.events import (
    BatchProgressed,
    EpochCompleted,
    Event,
    ListenerFailed,
    RunFailed,
    RunFinished,
    RunStarted,
    ThreadsChanged,
)
from engine.runs.folder import to_json
from engine.io.text import TerminalStream, json_text, printable


# errors whose one line says it all (a full disk, a symlink in the run folder): no traceback to point to, and
# events.jsonl may not have taken it
SELF_EXPLAINED = ("CheckpointError", "RunFolderError")


PROGRESS_BAR_WIDTH, PROGRESS_BAR_MIN = 20, 5

CHAPTER_BADGES = {"overfitting": "⚠️  OVERFITTING", "underfitting": "⚠️  UNDERFITTING", "nan": "❌ NaN DETECTED"}


def split_scores(e: EpochCompleted, split: str) -> str:
    """A split's loss and its accuracy, or a regression's MAE, RMSE and R² (in the target's units)."""
    loss, acc = getattr(e, f"{split}_loss"), getattr(e, f"{split}_acc")
    mae, rmse, r2 = (getattr(e, f"{split}_{name}") for name in ("mae", "rmse", "r2"))
    if mae is None or rmse is None or r2 is None:
        return f"{loss:.4f} ({acc:.1%})" if acc is not None else f"{loss:.4f}"
    return f"{loss:.4f} (MAE {mae:.4g}, RMSE {rmse:.4g}, R² {r2:.3f})"


def chapter_line(e: EpochCompleted) -> str:
    """Chapter 8.3's `log_epoch` line exactly, for `diagnostics.rules = "chapter"`."""
    return (
        f"Epoch [{e.epoch:3d}/{e.epochs}] | LR: {e.lr:.2e} | "
        f"Train: {split_scores(e, 'train')} | Val: {split_scores(e, 'val')} | "
        f"Écart: {e.val_loss - e.train_loss:+.4f} | {CHAPTER_BADGES.get(e.diagnostic.status, '✅ OK')}"
    )


def epoch_line(e: EpochCompleted) -> str:
    """Chapter 8.3's log line: epoch, LR, train and val loss (accuracy), the gap, the diagnostic."""
    width = len(str(e.epochs))
    line = (
        f"Epoch [{e.epoch:{width}d}/{e.epochs}] | LR: {e.lr:.2e} | "
        f"Train: {split_scores(e, 'train')} | Val: {split_scores(e, 'val')} | "
        f"Gap: {e.val_loss - e.train_loss:+.4f} | {e.diagnostic.label}"
    )
    if e.diagnostic.status != "ok":
        line += f" ({printable(e.diagnostic.message)})"
    if e.is_best:
        line += " | best"
    return line


def threads_line(e: ThreadsChanged) -> str:
    """A change of a CPU run's threads, and why."""
    why = e.reason or (
        f"other processes took {e.busy_elsewhere:.1f} cores" if e.threads < e.previous else "cores free again"
    )
    change = f"{e.previous} -> {e.threads}" if e.previous != e.threads else e.threads
    return f"Threads    : {change} in epoch {e.epoch} ({printable(why)})"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def eta_texts(event: BatchProgressed) -> list[str]:
    """The time left, longest first: the run's and the epoch's, then the run's alone (an older event: the epoch's)."""
    epoch = f"epoch {_duration(event.eta_s)}"
    if event.run_eta_s is None:
        return [f"ETA {_duration(event.eta_s)}"]
    run = f"run {'at most ' * event.run_eta_at_most}{_duration(event.run_eta_s)} left"
    return [f"{run} ({epoch})", run]


def progress_line(event: BatchProgressed, columns: int) -> str:
    """The live progress line, kept to one row of `columns` (a wrapped line could not be erased): the bar narrows,
    then goes, then the epoch's ETA."""
    head = f"  epoch {event.epoch}"
    counts = f" {event.batch}/{event.batches}  loss {event.loss:.4f}  {event.samples_per_s:,.0f} samples/s  "
    room = columns - 1
    for eta in eta_texts(event):
        tail = counts + eta
        bar_width = min(PROGRESS_BAR_WIDTH, room - len(head) - len(tail) - 3)
        if bar_width >= PROGRESS_BAR_MIN:
            done = int(bar_width * event.batch / max(event.batches, 1))
            return f"{head} [{'#' * done}{'.' * (bar_width - done)}]{tail}"
        if len(head) + len(tail) <= room:
            return head + tail
    return (head + tail)[:room]


def _columns(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):  # not a real terminal (a test's stream)
        return shutil.get_terminal_size().columns


def _discard(out: TextIO) -> None:
    """The reader of `out` has gone (`| head -1`): what is still buffered goes to /dev/null, so Python's flush at exit
    meets no broken pipe (no "Exception ignored ... BrokenPipeError", no exit status 120)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, out.fileno())
    except (OSError, ValueError):  # a stream with no descriptor (io.StringIO) has nothing to flush at exit
        pass
    finally:
        os.close(devnull)


class EpochPrinter:
    """Human output. A self-updating progress line only when `out` is a terminal: logs never get carriage returns.

    When the reader of `out` goes (`| head -1`) the run goes on, recorded as usual; only the printing stops.
    Both streams are TerminalStreams: a name or an error from a file is shown, never acted on by the terminal.
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out: TerminalStream | None = TerminalStream.around(out or sys.stdout)
        self.err = TerminalStream.around(err or sys.stderr)
        self.live = self.out.isatty()
        self._progress_shown = False
        self.chapter = False  # diagnostics.rules = "chapter": the chapter's own line (set at RunStarted)

    def _clear(self) -> None:
        if self._progress_shown:
            self.out.write_control("\r\x1b[K")
            self._progress_shown = False

    def on_event(self, event: Event) -> None:
        if self.out is not None:
            try:
                self._show(event)
            except BrokenPipeError:
                _discard(self.out)
                self.out = None
        if isinstance(event, ListenerFailed):  # the run goes on; on stderr, as the run's own failure
            print(
                f"trainconsole: warning: {printable(event.listener)} stopped listening: {printable(event.error)}; "
                "the run goes on",
                file=self.err,
            )
        if isinstance(event, RunFailed):  # on stderr, which outlives a closed stdout pipe
            print(f"trainconsole: training failed at epoch {event.epoch + 1}: {printable(event.error)}", file=self.err)
            if event.run_dir and event.error_type not in SELF_EXPLAINED:
                print(f"trainconsole: details in {printable(event.run_dir)}/events.jsonl", file=self.err)

    def _show(self, event: Event) -> None:
        if isinstance(event, BatchProgressed):
            if self.live:
                self._show_progress(event)
            return
        self._clear()
        if isinstance(event, RunStarted):
            self._show_start(event)
        elif isinstance(event, EpochCompleted):
            print(chapter_line(event) if self.chapter else epoch_line(event), file=self.out)
        elif isinstance(event, ThreadsChanged):
            print(threads_line(event), file=self.out)
        elif isinstance(event, RunFinished):
            self._show_end(event)
        self.out.flush()

    def _show_progress(self, event: BatchProgressed) -> None:
        self.out.write_control("\r\x1b[K")
        self.out.write(progress_line(event, _columns(self.out)))
        self.out.flush()
        self._progress_shown = True

    def _show_start(self, event: RunStarted) -> None:
        resumed = f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""
        print(f"Run folder : {printable(event.run_dir)}{resumed}", file=self.out)
        print(
            f"Device     : {printable(event.device)} ({printable(event.device_name)}), {event.precision}, "
            f"{event.threads} CPU thread{'s' * (event.threads != 1)}"
            + (f" per process, {event.processes} processes (DDP)" if event.processes > 1 else ""),
            file=self.out,
        )
        model = printable(event.settings["model"]["name"])
        model += f" (auto: {printable(event.model_reason)})" if event.model_reason else ""
        print(f"Model      : {model}, {event.parameters:,} parameters", file=self.out)
        print(f"Data       : {printable(event.data_path)}", file=self.out)
        print(f"Step       : {printable(event.step)}", file=self.out)
        if event.baseline_loss is not None and event.baseline_acc is None:
            print(f"Baseline   : mean predictor (training mean): val loss {event.baseline_loss:.4f} "
                  "(standardised target), R² 0", file=self.out)
        elif event.baseline_loss is not None:
            print(
                f"Baseline   : constant predictor (class priors): val loss {event.baseline_loss:.4f}, "
                f"accuracy {event.baseline_acc:.1%}",
                file=self.out,
            )
        if event.note:
            print(f"Note       : {printable(event.note)}", file=self.out)
        diagnostics = event.settings.get("diagnostics")
        self.chapter = isinstance(diagnostics, dict) and diagnostics.get("rules") == "chapter"

    def _show_end(self, event: RunFinished) -> None:
        best = f"; best {event.monitor} {event.best_value:.4f} at epoch {event.best_epoch}" if event.best_epoch else ""
        word = {
            "completed": "Run completed",
            "early_stopped": "Early stop",
            "stopped": "Run stopped",
            "nan": "Run stopped on NaN",
        }.get(event.status, event.status)
        print(
            f"{printable(word)}: {printable(event.reason)}; {event.epochs_completed} epoch(s) in all, "
            f"{_duration(event.seconds)} this session{best}",
            file=self.out,
        )
        print(f"Run folder : {printable(event.run_dir)}", file=self.out)

    def close(self) -> None:
        if self.out is None:
            return
        try:
            self._clear()
            self.out.flush()
        except BrokenPipeError:
            _discard(self.out)
            self.out = None


class JsonPrinter:
    """`--json`: one JSON event per line; when the reader goes (`| head -1`) the run goes on, recorded as usual."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out: TextIO | None = out

    def on_event(self, event: Event) -> None:
        if self.out is None:
            return
        try:
            self.out.write(json_text(to_json(event.to_dict())) + "\n")
            self.out.flush()
        except BrokenPipeError:
            _discard(self.out)
            self.out = None

    def close(self) -> None:
        if self.out is not None:
            try:
                self.out.flush()
            except BrokenPipeError:
                _discard(self.out)
                self.out = None


def format_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_runs(runs) -> str:
    import datetime

    lines = []
    for run in runs:
        lines.append(
            f"{printable(run.name)}  [{printable(run.status)}]  {run.epochs} epochs, "
            f"best epoch {run.best_epoch or '-'} by {printable(run.monitor)}  ({printable(run.path)})"
        )
        for c in run.checkpoints:
            when = datetime.datetime.fromtimestamp(c.mtime).strftime("%Y-%m-%d %H:%M")
            at = f"epoch {c.epoch}" + (f" + {c.batch} batches" if c.batch else "") if c.epoch is not None else "epoch ?"
            vl = f"val_loss {c.val_loss:.4f}" if isinstance(c.val_loss, float) else "val_loss -"
            va = f"val_acc {c.val_acc:.1%}" if isinstance(c.val_acc, float) else "val_acc -"
            mark = " *best" if c.is_best else ""
            lines.append(
                f"  {printable(c.kind):5s} {printable(_file_name(c.path)):14s} {at:22s} {vl:18s} {va:15s} "
                f"{format_size(c.size):>9s}  {when}{mark}{'  ' + printable(c.error) if c.error else ''}"
            )
    return "\n".join(lines)


def _file_name(path: str) -> str:
    from pathlib import Path

    return Path(path).name
