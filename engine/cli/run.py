"""`trainconsole run`: one run in this process (or, with --processes N, in N workers through torchrun), one line
per epoch; signals stop it at a batch boundary (engine.cli.signals)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli import runs, spinner
from engine.cli.arguments import add_allow_import, settings_path
from engine.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.io.text import printable


def add_parser(subparsers) -> None:
    run = subparsers.add_parser("run", help="train headless, one line per epoch")
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
    add_allow_import(run)


def cmd_run(args) -> int:
    from engine.cli.printers import EpochPrinter, JsonPrinter
    from engine.cli.signals import StopOnSignals
    from engine.training.distributed import from_environment, under_launcher
    from engine.training.control import RunControl

    spinner.say("reading the settings")
    settings, resume_from = run_settings(args)
    if args.detach:  # everything above is checked before the process starts: a bad file is still exit 2, here
        return runs.start_detached(args, settings, resume_from)

    group = from_environment()
    if settings.device.processes > 1 and not under_launcher():
        from engine.cli.launch import launch, worker_args

        spinner.say(f"starting {settings.device.processes} processes")
        return launch(settings.device.processes, worker_args(args, resume_from))
    spinner.say("setting up the run: data, model, device")  # erased by the run's first line
    printer = JsonPrinter(sys.stdout) if args.json else EpochPrinter(sys.stdout)
    control = RunControl()
    output = _TerminalSafe(printer)
    trainer = make_trainer(settings, output, control, resume_from, args.into, group)
    signals = StopOnSignals(trainer, control, group)
    signals.install()
    try:
        return _train(trainer, group, args.into)
    finally:
        signals.restore()
        output.close()


def run_settings(args):
    """The run's settings, checked: the file, --set and --processes, and with --resume the checkpoint's own; and
    the checkpoint it resumes from (None for a new run)."""
    from engine.runs.checkpoints import resolve_resume
    from engine.runs.resume import resume_settings
    from engine.settings.config import load_settings
    from engine.settings.user_code import named_imports, set_code_folder

    path = settings_path(args)
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
    return settings, resume_from


def make_trainer(settings, output, control, resume_from: Path | None, into: str | None, group):
    """The run's Trainer, its listeners and its control."""
    from engine.api import Run

    # only rank 0 prints: the others' output would repeat its lines
    return Run(settings, output if group.is_main else (), control, resume_from=resume_from, into=into, group=group)


def _train(trainer, group, into: str | None) -> int:
    """Set up, train; the run's exit code."""
    try:
        trainer.setup()
    except Exception as e:
        if not group.is_main:  # rank 0 met or heard of the same error, and says it once
            return EXIT_USAGE
        if into:  # a detached run: nobody reads its stderr, so its folder records why it did not start
            runs.record_setup_failure(Path(into), e)
        raise
    return exit_code(trainer.run())


def exit_code(final) -> int:
    """The exit code of a run that ended with `final` (RunFinished or RunFailed)."""
    from engine.events import RunFailed

    if isinstance(final, RunFailed):
        return EXIT_FAILED
    if final.status == "nan":
        return EXIT_FAILED
    if final.status == "stopped":  # a signal that came after the last epoch changed nothing
        return EXIT_INTERRUPTED
    return EXIT_OK


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
