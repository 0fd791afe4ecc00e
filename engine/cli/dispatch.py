"""Headless commands: `trainconsole run | eval | checkpoints | env`.

The console, `trainconsole` with no command, is tui.cli's.

Exit codes: 0 done, 1 training failed, 2 bad settings or usage (one line on
stderr, no traceback), 130 interrupted: Ctrl-C (SIGINT), SIGTERM and SIGHUP
all stop the run at the next batch boundary with last.pth saved, so
`trainconsole run --resume last` continues it. One code for every graceful
stop lets a script tell "resumable" from "failed"; a second Ctrl-C aborts
at once (last.pth then holds the previous epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from engine.cli import outputs, runs
from engine.io.text import TerminalStream, json_text, printable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


ALLOW_HELP = (
    "let settings from a checkpoint or run folder import this code (repeatable); your own settings need no flag"
)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="trainconsole", description="A terminal training console for PyTorch. With no command, opens the console."
    )
    p.add_argument(
        "-c", "--config", default=None, help="settings file (default: ./settings.toml; built-in defaults when absent)"
    )
    p.add_argument(
        "--set",
        dest="console_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting in the console, as with run",
    )
    p.add_argument(
        "--allow-import", dest="console_allowed", action="append", default=[], metavar="MODULE:NAME", help=ALLOW_HELP
    )
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="train headless, one line per epoch")
    run.add_argument("-c", "--config", dest="config_run", default=None, help="settings file (default: ./settings.toml)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set training.lr=0.01 (repeatable)",
    )
    run.add_argument(
        "--resume", metavar="last|PATH", help="continue a run from its last.pth (last: the newest run in runs_dir)"
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON event per line (with --detach: one line, the run)"
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="train in a process of its own that outlives this terminal; returns at once",
    )
    run.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="train data-parallel in N processes on this machine (through torchrun; device.processes)",
    )
    run.add_argument("--into", default=None, help=argparse.SUPPRESS)  # a detached run's folder, made by its starter
    run.add_argument("--code-folder", default=None, help=argparse.SUPPRESS)  # where a detached run finds user modules
    run.add_argument(
        "--allow-import", dest="allowed", action="append", default=[], metavar="MODULE:NAME", help=ALLOW_HELP
    )

    ev = sub.add_parser("eval", help="evaluate a checkpoint on the validation or test split")
    ev.add_argument("checkpoint", help="a .pth file or a run folder (its best.pth)")
    ev.add_argument(
        "-c",
        "--config",
        dest="config_run",
        default=None,
        help="settings to rebuild model and data (default: the run's own settings)",
    )
    ev.add_argument("--split", choices=("val", "test"), default="val")
    ev.add_argument(
        "--device", default=None, help="evaluate on this device instead of the run's (auto, cpu, cuda:N, mps)"
    )
    ev.add_argument("--json", action="store_true")
    ev.add_argument(
        "--allow-import", dest="allowed", action="append", default=[], metavar="MODULE:NAME", help=ALLOW_HELP
    )

    ls = sub.add_parser("checkpoints", help="list runs and their checkpoints")
    ls.add_argument("runs_dir", nargs="?", default=None, help="default: run.runs_dir of ./settings.toml")
    ls.add_argument("--json", action="store_true")

    at = sub.add_parser("attach", help="open the console on a run in progress (default: the newest running run)")
    at.add_argument("run", nargs="?", default=None, help="a run folder, or a run's name in runs_dir")
    at.add_argument("--runs-dir", default=None, help="default: run.runs_dir of the settings")
    for name, what in (
        ("stop", "stop a run at the next batch boundary, last.pth saved"),
        ("pause", "pause a run"),
        ("resume", "resume a paused run"),
        ("wait", "wait until a run ends; exit with its code"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument(
            "run", nargs="?", default=None, help="a run folder or a run's name (default: the newest running)"
        )
        cmd.add_argument("--runs-dir", default=None, help="default: run.runs_dir of the settings")

    outputs.add_parsers(sub)
    env = sub.add_parser("env", help="report Python, PyTorch, CUDA/MPS, GPUs and CPU")
    env.add_argument("--json", action="store_true")
    return p


def main(
    argv: list[str] | None = None,
    console: Callable[[argparse.Namespace], int] | None = None,
    chart: Callable[..., str] | None = None,
) -> int:
    """Run one command; with none, `console(args)` when given (tui.cli gives it), else a usage error.

    `chart(result, width)`: lr-find's curve as text (tui.cli gives plotext's; without it a short table).

    Everything printed goes through engine.io.text.TerminalStream: text from files never reaches the terminal as
    control characters, whichever module prints it.
    """
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None else TerminalStream.around(s) for s in streams)
    try:
        return _main(argv, console, chart)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None, console: Callable[[argparse.Namespace], int] | None, chart=None) -> int:
    from engine.device import apply_openmp_defaults

    apply_openmp_defaults()  # before anything imports torch
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(printable(e), file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run_command(args, console, chart)
    except Exception as e:  # a bug, not the user's input: one line here, the traceback in a file it names
        from engine.cli.crash import crash_line, write_crash_report

        report = write_crash_report(e, f"trainconsole {' '.join(sys.argv[1:])}")
        print(printable(crash_line(e, report)), file=sys.stderr)
        return EXIT_FAILED


def _run_command(args, console: Callable[[argparse.Namespace], int] | None, chart=None) -> int:
    from engine.settings.config import SettingsError  # torch-free: the console must paint before torch loads

    if args.command in outputs.COMMANDS:
        return outputs.run(args, console, chart)
    if args.command in (None, "attach"):
        if console is None:
            print(
                "trainconsole: a command is needed: run, eval, checkpoints, env, stop, pause, resume or wait "
                "(the console, and attach, are `trainconsole`'s)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            return console(args)
        except SettingsError as e:
            print(f"trainconsole: error: {printable(e)}", file=sys.stderr)
            return EXIT_USAGE
    from engine.runs.checkpoints import CheckpointError

    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "checkpoints":
            return cmd_checkpoints(args)
        if args.command in ("stop", "pause", "resume"):
            return runs.cmd_command(args)
        if args.command == "wait":
            return runs.cmd_wait(args)
        return cmd_env(args)
    except (SettingsError, CheckpointError, UsageError) as e:
        print(f"trainconsole: error: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("trainconsole: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `trainconsole checkpoints | head`: the reader has gone, which is not an error
        os.dup2(
            os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno()
        )  # no second traceback when Python flushes at exit
        return EXIT_OK
    except OSError as e:  # the disk or the OS refused (a folder not readable, ...): what and where, in one line
        where = f" {printable(e.filename)}" if e.filename else ""
        print(f"trainconsole: error:{where}: {printable(e.strerror or e)}", file=sys.stderr)
        return EXIT_FAILED


DEFAULT_SETTINGS = "settings.toml"


def _settings_path(args) -> str:
    """The settings file: a path named with -c must exist; ./settings.toml may be absent (built-in defaults)."""
    from engine.settings.config import SettingsError

    named = getattr(args, "config_run", None) or args.config
    if named is not None and not Path(named).is_file():
        raise SettingsError(f"{named}: no such settings file")
    return named or DEFAULT_SETTINGS


def cmd_run(args) -> int:
    from engine.runs.checkpoints import resolve_resume
    from engine.settings.config import load_settings
    from engine.cli.printers import EpochPrinter, JsonPrinter
    from engine.events import RunFailed
    from engine.runs.resume import resume_settings
    from engine.training.distributed import from_environment, under_launcher
    from engine.api import Run
    from engine.training.control import RunControl
    from engine.settings.user_code import named_imports, set_code_folder

    path = _settings_path(args)
    if args.processes is not None:  # the same as --set: checked with the settings, passed on to the workers
        args.overrides.append(f"device.processes={args.processes}")
    settings = load_settings(path, args.overrides)
    set_code_folder(Path(args.code_folder) if args.code_folder else Path(path).resolve().parent)
    resume_from = None
    if args.resume:
        resume_from = resolve_resume(args.resume, settings.run.runs_dir)
        if args.resume == "last" and not args.json:  # picked for the user: the run's log says which
            print(f"--resume last: the run started last, {printable(resume_from)}")
        # what the user named: their settings, --set, --allow-import
        allowed = named_imports(settings) | set(args.allowed)
        settings, _ = resume_settings(resume_from, allowed, args.overrides)
    if args.detach:  # everything above is checked before the process starts: a bad file is still exit 2, here
        return runs.start_detached(args, settings, resume_from)

    group = from_environment()
    if settings.device.processes > 1 and not under_launcher():
        from engine.cli.launch import launch, worker_args

        return launch(settings.device.processes, worker_args(args, resume_from))
    printer = JsonPrinter(sys.stdout) if args.json else EpochPrinter(sys.stdout)
    control = RunControl()
    output = _TerminalSafe(printer)
    # only rank 0 prints: the others' output would repeat its lines
    trainer = Run(
        settings, output if group.is_main else (), control, resume_from=resume_from, into=args.into, group=group
    )
    at_once = {"stopping": False}

    def stop_at_once(signum, frame):
        """A second Ctrl-C, or a signal before training began: the run stops where the main thread is, even inside
        a library call, and is recorded as stopped; further Ctrl-C change nothing while that is written."""
        at_once["stopping"] = True
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    def on_signal(signum, frame):
        # still setting up: nothing to save, nothing to wait for (the ranks of several processes, whose launcher
        # signals them when a peer dies, learn of it through their set-up's agreement instead, and say so)
        if not trainer.ready and not group.active:
            stop_at_once(signum, frame)
        name = signal.Signals(signum).name
        control.stop(f"{name} received: stopped at a batch boundary, last.pth saved")
        signal.signal(signum, stop_at_once)  # the same signal again: the stop cannot wait for a batch boundary
        if signum == signal.SIGINT:
            _say("trainconsole: stopping at the next batch boundary (last.pth is saved); Ctrl-C again stops at once")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        try:
            trainer.setup()
        except Exception as e:
            if not group.is_main:  # rank 0 met or heard of the same error, and says it once
                return EXIT_USAGE
            if args.into:  # a detached run: nobody reads its stderr, so its folder records why it did not start
                runs.record_setup_failure(Path(args.into), e)
            raise
        final = trainer.run()
    finally:
        for sig, handler in previous.items():
            if not at_once["stopping"]:  # the stop is under way: further signals stay ignored until the exit
                signal.signal(sig, handler)
        output.close()
    if isinstance(final, RunFailed):
        return EXIT_FAILED
    if final.status == "nan":
        return EXIT_FAILED
    if final.status == "stopped":  # a signal that came after the last epoch changed nothing
        return EXIT_INTERRUPTED
    return EXIT_OK


def _say(line: str) -> None:
    """One line on stderr from a signal handler: os.write, since print may be inside a write of its own; a terminal
    that has gone (a dropped SSH session) is no reason to fail."""
    try:
        os.write(sys.stderr.fileno(), (line + "\n").encode())
    except (OSError, ValueError):
        pass


class _TerminalSafe:
    """Forwards events to the printer until the terminal goes (SIGHUP of a dropped SSH session: writes fail with EIO).

    The run must still reach its batch boundary and save last.pth, so output errors are dropped, not raised.
    """

    def __init__(self, printer):
        self.printer = printer
        self.gone = False

    def on_event(self, event) -> None:
        if self.gone:
            return
        try:
            self.printer.on_event(event)
        except OSError:
            self.gone = True

    def close(self) -> None:
        if not self.gone:
            try:
                self.printer.close()
            except OSError:
                pass


def cmd_eval(args) -> int:
    from engine.settings.config import SettingsError, load_settings
    from engine.runs.evaluate import evaluate_checkpoint, format_evaluation
    from engine.settings.user_code import named_imports, set_code_folder

    if args.device is not None:
        from engine.device import resolve_device

        try:
            resolve_device(args.device)
        except SettingsError as e:
            raise SettingsError(f"--device {args.device}: {str(e).split(': ', 1)[-1]}") from None
    allowed = set(args.allowed)
    own = (
        args.config_run or args.config or DEFAULT_SETTINGS
    )  # the user's settings: the import paths they name are theirs
    if Path(own).is_file():
        set_code_folder(Path(own).resolve().parent)
        try:
            allowed |= named_imports(load_settings(own))
        except SettingsError:
            pass  # -c is loaded again, and reported, by evaluate_checkpoint
    result = evaluate_checkpoint(
        args.checkpoint, args.config_run, split=args.split, device=args.device, allowed_imports=allowed
    )
    if args.json:
        print(json_text(json.dumps(result)))
    else:
        print(format_evaluation(result))
    return EXIT_OK


def cmd_checkpoints(args) -> int:
    from dataclasses import asdict

    from engine.runs.checkpoints import list_runs
    from engine.settings.config import load_settings

    runs_dir = args.runs_dir or load_settings(_settings_path(args)).run.runs_dir
    runs = list_runs(runs_dir)
    for note in (note for run in runs for note in run.notes):  # what the reader skipped: said, the rest still shown
        print(f"trainconsole: {printable(note)}", file=sys.stderr)
    if args.json:
        print(json_text(json.dumps([asdict(r) for r in runs])))
        return EXIT_OK
    if not runs:
        print(f"no runs in {printable(runs_dir)}")
        return EXIT_OK
    from engine.cli.printers import format_runs

    print(format_runs(runs))
    return EXIT_OK


def cmd_env(args) -> int:
    from engine.device import environment_report, format_report

    report = environment_report()
    print(json_text(json.dumps(report, indent=2)) if args.json else format_report(report))
    return EXIT_OK
