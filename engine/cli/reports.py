"""The commands that read and report: `trainconsole eval` (a checkpoint on a split), `checkpoints` (runs and their
checkpoints), `explain` (a run's diagnostic badge) and `env` (Python, PyTorch, the devices)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli import spinner
from engine.cli.arguments import DEFAULT_SETTINGS, add_allow_import, settings_path
from engine.cli.exits import EXIT_OK
from engine.io.text import json_text, printable

EXPLAIN_WIDTH = 100  # explain's lines are wrapped to the terminal, at most this wide


def add_parsers(subparsers) -> None:
    """eval, checkpoints and explain; env is added by add_env_parser, last in the list of commands."""
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

    ex = subparsers.add_parser(
        "explain", help="explain a run's diagnostic badge: its evidence, what it usually means, what to try"
    )
    ex.add_argument("run", help="a run folder, or a run's name in runs_dir")
    ex.add_argument("epoch", nargs="?", type=int, default=None, help="the epoch (default: the last one)")
    ex.add_argument("--runs-dir", default=None, help="default: run.runs_dir of the settings")
    ex.add_argument("--json", action="store_true")


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
    spinner.say(f"evaluating on the {args.split} split")
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


def cmd_explain(args) -> int:
    """The badge of one epoch (default: the last) explained; without an epoch, also every non-OK badge's epochs."""
    import shutil

    from engine.training.advice import badge_epochs, badge_summary, explain

    run_dir = _explained_run(args)
    badges = _epoch_badges(run_dir)
    epoch = _explained_epoch(args.epoch, sorted(badges), run_dir)
    diagnostic, recorded = badges[epoch]
    explanation = explain(diagnostic, epoch, recorded)
    statuses = [(n, d.status) for n, (d, _) in badges.items()]
    if args.json:
        data = {"run_dir": str(run_dir), **explanation.to_dict(), "badges": badge_epochs(statuses)}
        print(json_text(json.dumps(data, allow_nan=False)))
        return EXIT_OK
    width = min(shutil.get_terminal_size().columns, EXPLAIN_WIDTH)
    print(f"Run: {printable(run_dir)}")
    print("\n".join(printable(line) for line in explanation.lines(width)))
    if args.epoch is None:
        print(f"\nBadges: {badge_summary(statuses)}")
    return EXIT_OK


def _explained_run(args) -> Path:
    from engine.runs.detach import find_run
    from engine.settings.config import load_settings

    return find_run(args.run, args.runs_dir or load_settings(settings_path(args)).run.runs_dir)


def _epoch_badges(run_dir: Path) -> dict:
    """{epoch: (Diagnostic, recorded)}: each epoch's last diagnostic in events.jsonl; an epoch only metrics.jsonl
    holds (a run older than its events' diagnostic, an event the reader skipped) by its status alone."""
    from engine.events import Diagnostic, EpochCompleted
    from engine.runs.records import read_events, read_metrics

    metrics, events = read_metrics(run_dir / "metrics.jsonl"), read_events(run_dir / "events.jsonl")
    for note in (metrics.note(), events.note()):  # what the reader skipped: said, the rest still explained
        if note:
            print(f"trainconsole: {printable(note)}", file=sys.stderr)
    badges = {row["epoch"]: (Diagnostic(row["diagnostic"], ""), False) for row in metrics.items if row["diagnostic"]}
    for event in events.items:
        if isinstance(event, EpochCompleted):
            badges[event.epoch] = (event.diagnostic, True)
    return badges


def _explained_epoch(asked: int | None, epochs: list[int], run_dir: Path) -> int:
    from engine.settings.config import SettingsError
    from engine.training.advice import epoch_spans

    if not epochs:
        raise SettingsError(f"{run_dir}: no epoch has ended yet: nothing to explain")
    if asked is None:
        return epochs[-1]
    if asked not in epochs:
        raise SettingsError(f"epoch {asked}: {run_dir} has {epoch_spans(epochs)}")
    return asked


def cmd_env(args) -> int:
    from engine.device import environment_report, format_report

    spinner.say("looking at the devices")
    report = environment_report()
    print(json_text(json.dumps(report, indent=2)) if args.json else format_report(report))
    return EXIT_OK
