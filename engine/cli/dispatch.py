"""`trainconsole COMMAND`: the parser of every command, and `main`, which runs the one named.

The console, `trainconsole` with no command, is tui.cli's. Exit codes: engine.cli.exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable

from engine.cli import outputs, reports, run, runs, sweep, trust
from engine.cli import spinner
from engine.cli.arguments import DEFAULT_SETTINGS, Parser, UsageError, add_allow_import
from engine.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.io.text import TerminalStream, printable

__all__ = ["DEFAULT_SETTINGS", "build_parser", "main"]

# the commands a user's mistake can stop with one line (the console's and outputs' say their own)
HEADLESS = {
    "run": run.cmd_run,
    "eval": reports.cmd_eval,
    "checkpoints": reports.cmd_checkpoints,
    "explain": reports.cmd_explain,
    "stop": runs.cmd_command,
    "pause": runs.cmd_command,
    "resume": runs.cmd_command,
    "wait": runs.cmd_wait,
    "env": reports.cmd_env,
    "trust": trust.cmd_trust,
    "sweep": sweep.cmd_sweep,
}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
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
    add_allow_import(p, dest="console_allowed")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    # in the order `--help` lists them
    run.add_parser(sub)
    sweep.add_parser(sub)
    reports.add_parsers(sub)
    runs.add_parsers(sub)
    outputs.add_parsers(sub)
    trust.add_parser(sub)
    reports.add_env_parser(sub)
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
    from engine.settings.renames import show_as_line

    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None else TerminalStream.around(s) for s in streams)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_as_line()  # an old settings key's note: one line, as every other
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
        with spinner.showing(spinner.first_status(args)):  # torch takes seconds to load: the user sees why
            return _run_command(args, console, chart)
    except KeyboardInterrupt:  # while torch loads, before a command's own handling: one line, as there
        print("trainconsole: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug, not the user's input: one line here, the traceback in a file it names
        from engine.cli.crash import crash_line, write_crash_report

        report = write_crash_report(e, f"trainconsole {' '.join(sys.argv[1:])}")
        print(printable(crash_line(e, report)), file=sys.stderr)
        return EXIT_FAILED


def _run_command(args, console: Callable[[argparse.Namespace], int] | None, chart=None) -> int:
    if args.command in outputs.COMMANDS:
        return outputs.run(args, console, chart)
    if args.command in (None, "attach"):
        return _open_console(args, console)
    return _run_headless(args)


def _open_console(args, console: Callable[[argparse.Namespace], int] | None) -> int:
    from engine.settings.config import SettingsError  # torch-free: the console must paint before torch loads

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


def _run_headless(args) -> int:
    """The command named; the user's mistakes, an interruption and the OS's refusals as one line and an exit code."""
    from engine.settings.config import SettingsError
    from engine.runs.checkpoints import CheckpointError

    try:
        return HEADLESS[args.command](args)
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
