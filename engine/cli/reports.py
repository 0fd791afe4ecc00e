"""The commands that read and report: `trainconsole eval` (a checkpoint on a split), `checkpoints` (runs and their
checkpoints) and `env` (Python, PyTorch, the devices)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli.arguments import DEFAULT_SETTINGS, add_allow_import, settings_path
from engine.cli.exits import EXIT_OK
from engine.io.text import json_text, printable


def add_parsers(subparsers) -> None:
    """eval and checkpoints; env is added by add_env_parser, last in the list of commands."""
    ev = subparsers.add_parser("eval", help="evaluate a checkpoint on the validation or test split")
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
    add_allow_import(ev)

    ls = subparsers.add_parser("checkpoints", help="list runs and their checkpoints")
    ls.add_argument("runs_dir", nargs="?", default=None, help="default: run.runs_dir of ./settings.toml")
    ls.add_argument("--json", action="store_true")


def add_env_parser(subparsers) -> None:
    env = subparsers.add_parser("env", help="report Python, PyTorch, CUDA/MPS, GPUs and CPU")
    env.add_argument("--json", action="store_true")


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

    runs_dir = args.runs_dir or load_settings(settings_path(args)).run.runs_dir
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
