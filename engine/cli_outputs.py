"""`trainconsole plot` (chapter 8.1's curves as a PNG) and `trainconsole view` (any logs, in the console)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from engine.text import printable

COMMANDS = ("plot", "view")


def add_parsers(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="save chapter 8.1's loss and accuracy curves of runs as a PNG")
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run folders (several: overlaid, one colour each)")
    plot.add_argument("--out", default=None, metavar="FILE.png", help="default: curves.png in the (first) run folder")
    view = subparsers.add_parser(
        "view", help="open TensorBoard event files, Lightning CSVLogger output or run folders in the console, read-only"
    )
    view.add_argument("path", help="a folder (searched below it) or a file")


def run(args: argparse.Namespace, console: Callable[[argparse.Namespace], int] | None) -> int:
    """0 done, 2 a bad argument or a missing extra (one line on stderr)."""
    from engine.settings.config import SettingsError

    try:
        if args.command == "plot":
            return cmd_plot(args)
        if not Path(args.path).exists():
            raise SettingsError(f"{args.path}: no such file or folder")
        if console is None:
            print("trainconsole: view opens the console: run it as `trainconsole view PATH`", file=sys.stderr)
            return 2
        return console(args)
    except SettingsError as e:
        print(f"trainconsole: error: {printable(e)}", file=sys.stderr)
        return 2


def cmd_plot(args: argparse.Namespace) -> int:
    from engine.outputs import require
    from engine.outputs.curves import save_curves
    from engine.outputs.readers import is_run_folder, read_run
    from engine.runs.atomic import NotARegularFile
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
    try:
        save_curves(runs, out)
    except NotARegularFile as e:  # a symlink (or a folder) at --out: refused, nothing written through it
        raise SettingsError(str(e)) from None
    except OSError as e:
        raise SettingsError(f"cannot write {out}: {e.strerror or e}") from None
    print(printable(out))
    return 0
