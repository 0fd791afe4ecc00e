"""`trainconsole sweep`: tune a run's settings with Optuna, each trial an ordinary run folder runs/<study>/trial-NNNN.

    trainconsole sweep [-c FILE] [--trials N] [--workers N] [--storage URL] [--study NAME] [--detach] [--json]

The study is named after run.name (--study overrides) and lives in runs/<study>/study.db unless --storage names
another; running the same command again resumes it. `stop`, `wait` and `attach` take runs/<study> as a run.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.cli import spinner
from engine.cli.arguments import add_allow_import, settings_path
from engine.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from engine.io.text import json_text, printable, shown_path

WORKERS_MAX = 256


def add_parser(subparsers) -> None:
    sw = subparsers.add_parser("sweep", help="tune settings with Optuna: each trial a run (the [sweep] table)")
    sw.add_argument("-c", "--config", dest="config_run", default=None, help="settings file with a [sweep] table")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting of every trial (repeatable)")
    sw.add_argument("--trials", type=int, default=None, metavar="N", help="trials of the study (sweep.trials)")
    sw.add_argument("--workers", type=int, default=1, metavar="N",
                    help="train N trials at once, each in a process of its own (the cores divided between them)")
    sw.add_argument("--storage", default=None, metavar="URL",
                    help="the study's database (default: sqlite in runs/<study>/study.db; postgresql://... to share "
                         "one study between machines)")
    sw.add_argument("--study", default=None, metavar="NAME", help="the study's name and folder (default: run.name)")
    sw.add_argument("--detach", action="store_true", help="run the sweep in a process of its own; returns at once")
    sw.add_argument("--json", action="store_true", help="print one JSON object per trial event")
    sw.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # one of --workers' processes, 1..N
    sw.add_argument("--worker-threads", type=int, default=0, help=argparse.SUPPRESS)
    sw.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # the process --detach started
    sw.add_argument("--code-folder", default=None, help=argparse.SUPPRESS)
    add_allow_import(sw)


class Printer:
    """The sweep's lines: one per trial event, or (--json) one JSON object per event, flushed as it comes."""

    def __init__(self, as_json: bool, out=None) -> None:
        self.as_json, self.out = as_json, out or sys.stdout

    def __call__(self, event: dict) -> None:
        try:
            self.out.write((json_text(json.dumps(event, default=str)) if self.as_json else _line(event)) + "\n")
            self.out.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader went: the sweep goes on, recorded in its study


def _line(e: dict) -> str:
    kind, n = e["event"], e.get("trial")
    if kind == "trial_started":
        params = ", ".join(f"{k}={v}" for k, v in e["params"].items())
        after = f", continues trial {e['continues']}" if e.get("continues") is not None else ""
        return printable(f"trial {n} started ({Path(e['run_dir']).name}{after}): {params}")
    if kind == "trial_epoch":
        value = "not finite" if e["value"] is None else f"{e['value']:.4f}"
        return printable(f"trial {n} epoch {e['epoch']}/{e['epochs']}: {e['monitor']} {value} ({e['diagnostic']})")
    if kind == "trial_error":
        return printable(f"trial {n} failed: {e['error']}")
    if kind == "trial_finished":
        value = "" if e["value"] is None else f": {e['value']:.4f}"
        how = {"pruned": f"pruned at epoch {e['pruned_at']} ({e['prune_reason']})",
               "stopped": "stopped (continued when the sweep runs again)"}.get(e["state"], e["state"])
        return printable(f"trial {n} {how}{value} after {e['epochs']} epoch(s)")
    return printable(json.dumps(e))


def cmd_sweep(args) -> int:
    from engine.settings.user_code import set_code_folder

    spinner.say("reading the settings")
    settings, sweep, sweep_dir, name = _sweep_settings(args)
    set_code_folder(Path(args.code_folder) if args.code_folder else Path(settings_path(args)).resolve().parent)
    if args.worker is not None:
        return _worker(args, settings, sweep, sweep_dir, name)
    if args.detach:
        return _start_detached(args, settings, sweep, sweep_dir, name)
    return _main(args, settings, sweep, sweep_dir, name)


def _sweep_settings(args):
    from engine.settings.config import SettingsError
    from engine.settings.defaults import run_name
    from engine.settings.sweep import load_sweep

    if not 1 <= args.workers <= WORKERS_MAX:
        raise SettingsError(f"--workers {args.workers}: expected 1 to {WORKERS_MAX}")
    path = settings_path(args)
    settings, sweep = load_sweep(path if Path(path).is_file() else None, args.overrides, args.trials)
    name = args.study or run_name(settings)
    settings.replace("run.name", name, f"--study {name!r}")  # a plain folder name, as run.name
    return settings, sweep, Path(settings.run.runs_dir) / name, name


def sweep_toml(settings, sweep) -> str:
    """What runs/<study>/sweep.toml holds: the settings as run (--set applied) and the [sweep] table."""
    import tomli_w

    from engine.settings.config import to_toml

    table = {"trials": sweep.trials, "sampler": sweep.sampler, "pruner": sweep.pruner,
             "prune_on_diagnosis": sweep.prune_on_diagnosis, "heartbeat_s": sweep.heartbeat_s,
             "grace_s": sweep.grace_s, "space": sweep.space_table()}
    header = "# trainconsole sweep: the settings this sweep was started with (a run ignores the [sweep] table)."
    return to_toml(settings, header) + "\n" + tomli_w.dumps({"sweep": table})


def _main(args, settings, sweep, sweep_dir: Path, name: str) -> int:
    from engine.sweep.folder import SweepSession, prepare_sweep_dir
    from engine.sweep.study import create_study, open_storage
    from engine.training.control import RunControl

    if not args.detached:
        prepare_sweep_dir(sweep_dir, sweep_toml(settings, sweep))
    control, say, started = RunControl(), Printer(args.json), time.monotonic()
    session = SweepSession(sweep_dir, control, detached=args.detached)
    status, reason, done, best = "completed", "", 0, None
    try:
        study = create_study(open_storage(sweep_dir, args.storage, sweep), name, settings, sweep)
        session.started(settings, sweep.trials, args.workers)
        code = _run_workers(args, settings, sweep, sweep_dir, name, study, control, say)
        summary = _summary(args, study, settings, sweep_dir, say)
        done = sum(1 for t in summary.view.trials if t.state in ("complete", "pruned"))
        best = summary.view.best.value if summary.view.best else None
        if control.stop_requested:
            status, reason, code = "stopped", control.reason or "stopped", EXIT_INTERRUPTED
        else:
            reason = f"{done} trial(s) done" + (", a worker failed" if code else "")
        return code
    except KeyboardInterrupt:
        status, reason = "stopped", "stopped at once by a second Ctrl-C"
        raise
    finally:
        session.finished(status, reason, done, best, settings.training.monitor, time.monotonic() - started)
        session.close()


def _summary(args, study, settings, sweep_dir: Path, say):
    from engine.sweep.report import summarize

    summary = summarize(study, settings, sweep_dir, args.storage)
    if args.json:
        say(summary.to_dict())
    else:
        _print_summary(summary)
    return summary


def _print_summary(summary) -> None:
    view, best = summary.view, summary.view.best
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items()))
    print(printable(f"Sweep {view.study}: {len(view.trials)} trial(s): {counts or 'none'}"))
    if best is None:
        print("No trial completed: no best settings")
    else:
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        print(printable(f"Best trial {best.number}: {view.monitor} {best.value:.4f} ({params})"))
        shown = shown_path(summary.best_settings)
        print(f"Best settings: {shown} (trainconsole run -c {shown})")
    if summary.importances:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in summary.importances.items())
        print(printable(f"Parameter importances: {ranked}"))
    elif summary.note:
        print(printable(f"Parameter importances: none ({summary.note})"))


def _run_workers(args, settings, sweep, sweep_dir, name, study, control, say) -> int:
    from engine.sweep.worker import work

    code = EXIT_OK if args.workers == 1 else _spawn_workers(args, sweep_dir, name, control)
    if args.workers == 1 or (code != EXIT_OK and not control.stop_requested):
        # a worker that died left its trial for a retry: this process trains what is left
        with _StopOnSignals(control):
            work(study, settings, sweep, sweep_dir, control, say)
    return code


def _worker_args(args, sweep_dir: Path, name: str, threads: int, index: int) -> list[str]:
    out = ["-c", str((sweep_dir / "sweep.toml").absolute()), "--study", name, "--worker", str(index),
           "--worker-threads", str(threads), "--code-folder", str(Path(settings_path(args)).resolve().parent)]
    out += ["--storage", args.storage] if args.storage else []
    out += ["--json"] if args.json else []
    for path in args.allowed:
        out += ["--allow-import", path]
    return out


def _spawn_workers(args, sweep_dir: Path, name: str, control) -> int:
    """N worker processes in this one's process group (a terminal's Ctrl-C reaches each); a stop of the sweep is
    passed on to them as SIGTERM (their cooperative stop)."""
    from engine.device import usable_cores

    threads = max(1, usable_cores() // args.workers)
    command = [sys.executable, "-m", "engine", "sweep"]
    workers = [subprocess.Popen([*command, *_worker_args(args, sweep_dir, name, threads, i)], stdin=subprocess.DEVNULL)
               for i in range(1, args.workers + 1)]
    with _StopOnSignals(control, workers):
        told = False
        while any(w.poll() is None for w in workers):
            control.wait_for_stop(0.2)
            if control.stop_requested and not told:
                told = True
                _signal_all(workers, signal.SIGTERM)
    codes = [w.returncode for w in workers]
    return EXIT_OK if all(c in (EXIT_OK, EXIT_INTERRUPTED) for c in codes) else EXIT_FAILED


def _signal_all(workers, signum) -> None:
    for w in workers:
        if w.poll() is None:
            try:
                w.send_signal(signum)
            except OSError:
                pass


class _StopOnSignals:
    """SIGINT, SIGTERM, SIGHUP: the sweep stops at the next batch boundary (running trials keep their last.pth);
    a second Ctrl-C stops at once (passed on to the workers)."""

    def __init__(self, control, workers=()) -> None:
        self.control, self.workers, self.previous = control, workers, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.control.stop_requested:
            _signal_all(self.workers, signal.SIGINT)
            if not self.workers:
                raise KeyboardInterrupt
            return
        self.control.stop(f"{signal.Signals(signum).name} received: the sweep stopped at a batch boundary, "
                          "last.pth saved")
        if signum == signal.SIGINT:
            print("trainconsole: stopping the sweep at the next batch boundary (last.pth is saved); Ctrl-C again "
                  "stops at once", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _worker(args, settings, sweep, sweep_dir: Path, name: str) -> int:
    from engine.sweep.study import load_study, open_storage
    from engine.sweep.worker import work
    from engine.training.control import RunControl

    control = RunControl()
    study = load_study(open_storage(sweep_dir, args.storage, sweep), name, settings, sweep, args.worker)
    with _StopOnSignals(control):
        work(study, settings, sweep, sweep_dir, control, Printer(args.json), args.worker_threads)
    return EXIT_INTERRUPTED if control.stop_requested else EXIT_OK


def _start_detached(args, settings, sweep, sweep_dir: Path, name: str) -> int:
    """The sweep folder made here, the sweep's process started in a session of its own; its output in output.log."""
    import os

    from engine.io.atomic import open_append
    from engine.runs.commands import is_running, open_channel
    from engine.runs.status import mark_starting
    from engine.sweep.folder import prepare_sweep_dir
    from engine.sweep.storage import SweepError

    if is_running(sweep_dir):
        raise SweepError(f"{sweep_dir}: this sweep is running already (trainconsole stop {sweep_dir} stops it)")
    prepare_sweep_dir(sweep_dir, sweep_toml(settings, sweep))
    log = open_append(sweep_dir / "output.log")
    os.close(open_append(sweep_dir / "events.jsonl"))  # `wait` and `attach` find the folder before it records
    open_channel(sweep_dir)  # a stop sent while the process loads waits in the file
    command = [sys.executable, "-m", "engine", "sweep", "-c", str((sweep_dir / "sweep.toml").absolute()),
               "--study", name, "--workers", str(args.workers), "--detached",
               "--code-folder", str(Path(settings_path(args)).resolve().parent)]
    command += ["--storage", args.storage] if args.storage else []
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    finally:
        os.close(log)
    mark_starting(sweep_dir, process.pid)
    shown = shown_path(sweep_dir)
    if args.json:
        print(json.dumps({"name": name, "sweep_dir": str(sweep_dir), "pid": process.pid}))
    else:
        print(printable(f"Sweep      : {name} (detached, process {process.pid})"))
        print(f"Sweep folder: {shown}")
        print(f"Follow it  : trainconsole attach {shown}   (stop, wait: the same argument)")
    return EXIT_OK
