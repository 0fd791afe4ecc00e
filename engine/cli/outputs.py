"""`trainconsole plot` (chapter 8.1's curves as a PNG), `trainconsole view` (any logs, in the console) and
`trainconsole lr-find` (the learning-rate range test: its curve, a suggested rate, the command that uses it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from engine.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.io.text import printable, shown_path

COMMANDS = ("plot", "view", "lr-find", "export-script")


def add_parsers(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="save chapter 8.1's loss and accuracy curves of runs as a PNG")
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run folders (several: overlaid, one colour each)")
    plot.add_argument("--out", default=None, metavar="FILE.png", help="default: curves.png in the (first) run folder")
    view = subparsers.add_parser(
        "view", help="open TensorBoard event files, Lightning CSVLogger output or run folders in the console, read-only"
    )
    view.add_argument("path", help="a folder (searched below it) or a file")
    find = subparsers.add_parser(
        "lr-find", help="sweep the learning rate over a few steps, show the loss curve and suggest a rate ([lr_find])"
    )
    find.add_argument(
        "-c", "--config", dest="config_run", default=None, help="settings file (default: ./settings.toml)"
    )
    find.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    find.add_argument("--png", default=None, metavar="FILE.png", help="also save the curve as a PNG")
    find.add_argument("--json", action="store_true", help="print the points and the suggestion as JSON")
    export = subparsers.add_parser(
        "export-script", help="write a run as one plain PyTorch script (the chapter's template with its settings)"
    )
    export.add_argument("run_folder", nargs="?", default=None, help="a run folder (its settings.toml)")
    export.add_argument("-c", "--config", dest="config_run", default=None, help="export these settings instead")
    export.add_argument("-o", "--out", default=None, metavar="FILE.py", help="default: train.py in the run folder")
    export.add_argument(
        "--allow-import",
        dest="allowed",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="let the run folder's settings import this code (repeatable)",
    )


def run(
    args: argparse.Namespace,
    console: Callable[[argparse.Namespace], int] | None,
    chart: Callable[..., str] | None = None,
) -> int:
    """0 done, 2 a bad argument or a missing extra (one line on stderr), 130 lr-find interrupted."""
    from engine.settings.config import SettingsError

    try:
        if args.command == "plot":
            return cmd_plot(args)
        if args.command == "lr-find":
            return cmd_lr_find(args, chart)
        if args.command == "export-script":
            return cmd_export_script(args)
        if not Path(args.path).exists():
            raise SettingsError(f"{args.path}: no such file or folder")
        if console is None:
            print("trainconsole: view opens the console: run it as `trainconsole view PATH`", file=sys.stderr)
            return EXIT_USAGE
        return console(args)
    except SettingsError as e:
        print(f"trainconsole: error: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE


def cmd_plot(args: argparse.Namespace) -> int:
    from engine.outputs import require
    from engine.outputs.compare import overlap_note, overlapping_runs
    from engine.outputs.curves import save_curves
    from engine.outputs.readers import is_run_folder, read_run
    from engine.settings.config import SettingsError

    require("matplotlib", "trainconsole plot")
    runs = []
    for path in map(Path, args.runs):
        if not is_run_folder(path):
            raise SettingsError(f"{path}: not a run folder (no metrics.jsonl)")
        run = read_run(path)
        if run.note:  # what the reader skipped: said, the rest still drawn
            print(f"trainconsole: {printable(run.note)}", file=sys.stderr)
        if not any(run.tags.values()):
            raise SettingsError(f"{path}: no epoch to draw in its metrics.jsonl")
        runs.append(run)
    out = Path(args.out) if args.out else Path(args.runs[0]) / "curves.png"
    if out.suffix.lower() != ".png":
        raise SettingsError(f"--out {out}: the picture is a PNG; name it FILE.png")
    write_png(lambda: save_curves(runs, out), out)
    if note := overlap_note(overlapping_runs(runs)):  # one run would hide the other: said, as in the PNG
        print(f"trainconsole: note: {printable(note)} (the later drawn with x markers)", file=sys.stderr)
    print(shown_path(out))
    return EXIT_OK


def cmd_export_script(args: argparse.Namespace) -> int:
    """The script's path on stdout; a setting it cannot write refused in one line (exit 2)."""
    from engine.outputs.export_script import export_settings, script_text, write_script
    from engine.io.atomic import NotARegularFile
    from engine.settings.config import SettingsError
    from engine.settings.user_code import set_code_folder

    config = args.config_run or (args.config if args.run_folder is None else None)
    if args.run_folder is None and not config:
        raise SettingsError("export-script: name a run folder, or settings with -c FILE")
    if config and not Path(config).is_file():
        raise SettingsError(f"{config}: no such settings file")
    if config:
        set_code_folder(Path(config).resolve().parent)
    settings, source = export_settings(args.run_folder or ".", config, set(args.allowed))
    out = Path(args.out) if args.out else Path(args.run_folder or ".") / "train.py"
    text = script_text(settings, source)
    try:
        write_script(text, out)
    except NotARegularFile as e:
        raise SettingsError(str(e)) from None
    except OSError as e:
        raise SettingsError(f"cannot write {out}: {e.strerror or e}") from None
    print(shown_path(out))
    return EXIT_OK


def cmd_lr_find(args: argparse.Namespace, chart: Callable[..., str] | None) -> int:
    """The sweep on the settings' model, data and step; nothing of any run is read or written."""
    import json
    import shutil

    from engine.settings.config import SettingsError, load_settings
    from engine.settings.user_code import set_code_folder
    from engine.io.text import json_text

    # as `run` reads them: a file named with -c must exist, ./settings.toml may be absent (the built-in defaults)
    path = args.config_run or args.config or "settings.toml"
    if (args.config_run or args.config) and not Path(path).is_file():
        raise SettingsError(f"{path}: no such settings file")
    settings = load_settings(path, args.overrides)
    set_code_folder(Path(path).resolve().parent)
    png = Path(args.png) if args.png else None
    if png is not None:
        if png.suffix.lower() != ".png":
            raise SettingsError(f"--png {png}: the picture is a PNG; name it FILE.png")
        from engine.outputs import require

        require("matplotlib", "trainconsole lr-find --png")
    from engine.training.lr_find import describe, find_lr

    try:
        result = find_lr(settings, on_point=None if args.json else _progress(settings.lr_find.steps))
    except KeyboardInterrupt:
        print("\ntrainconsole: lr-find interrupted; nothing was changed", file=sys.stderr)
        return EXIT_INTERRUPTED
    command = lr_command(args, result.suggestion)
    if png is not None:
        _save_png(result, png)
    if args.json:
        print(json_text(json.dumps({**result.to_dict(), "command": command})))
        return EXIT_OK
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    print(chart(result, width) if chart is not None else _table(result))
    print(describe(result, settings))
    if command:
        print(command)
    if png is not None:
        print(shown_path(png))
    return EXIT_OK


def _progress(steps: int) -> Callable | None:
    """A progress line on stderr while it sweeps, on a terminal only (a log gets no carriage returns)."""
    if not sys.stderr.isatty():
        return None

    def show(i: int, point) -> None:
        end = "\n" if i + 1 == steps else ""
        print(f"\rlr-find: step {i + 1}/{steps}, lr {point.lr:.2e}, loss {point.smoothed:.4f}  ", end=end,
              file=sys.stderr, flush=True)  # fmt: skip

    return show


def write_png(save: Callable[[], None], path: Path) -> None:
    """`save()` of a picture at `path`, its failure as one line (SettingsError: exit 2)."""
    from engine.io.atomic import NotARegularFile
    from engine.settings.config import SettingsError

    try:
        save()
    except NotARegularFile as e:  # a symlink (or a folder) at the path: refused, nothing written through it
        raise SettingsError(str(e)) from None
    except OSError as e:
        raise SettingsError(f"cannot write {path}: {e.strerror or e}") from None


def _save_png(result, png: Path) -> None:
    from engine.outputs.lr_curve import save_lr_curve

    write_png(lambda: save_lr_curve(result, png), png)


def lr_command(args: argparse.Namespace, lr: float | None) -> str | None:
    """`trainconsole run` with the same settings file and --set values, and the suggested rate."""
    import shlex

    if lr is None:
        return None
    words = ["trainconsole", "run"]
    named = getattr(args, "config_run", None) or args.config
    if named:
        words += ["-c", named]
    for text in args.overrides:
        key = text.partition("=")[0].strip()
        if key != "training.lr" and not key.startswith("lr_find."):
            words += ["--set", text]
    words += ["--set", f"training.lr={lr:.3g}"]
    return printable(shlex.join(words))


def _table(result) -> str:
    """Without a chart drawer (`python -m engine lr-find`): every tenth point as a line."""
    rows = [f"{'lr':>10}  {'smoothed loss':>13}"]
    for i, p in enumerate(result.points):
        if i % 10 == 0 or i == result.index or i == len(result.points) - 1:
            rows.append(f"{p.lr:>10.2e}  {p.smoothed:>13.4f}{'  <- suggested' if i == result.index else ''}")
    return "\n".join(rows)
