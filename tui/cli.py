"""The `trainconsole` command: the console with no subcommand, the headless CLI (engine.cli) with one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import cli


def main(argv: list[str] | None = None) -> int:
    from tui.lr_curve import curve_text

    return cli.main(sys.argv[1:] if argv is None else argv, console=open_console, chart=curve_text)


def open_console(args: argparse.Namespace) -> int:
    """The console on `-c` (or ./settings.toml) with `--set` applied.

    A file that does not load stops here, before the console opens.
    """
    if getattr(args, "command", None) == "view":  # the viewer of any logs: no settings, no run
        from tui.screens.scalars import ScalarsApp

        ScalarsApp(args.path).run()
        return 0
    from engine.settings.config import load_settings
    from engine.settings.renames import renamed_notes
    from engine.settings.user_code import set_code_folder

    path = args.config or cli.DEFAULT_SETTINGS
    # starting on defaults could later save them over a bad file: it is refused with its one line instead
    with renamed_notes() as notes:  # shown in the console once it is up
        settings = load_settings(path if Path(path).exists() else None, args.console_overrides)
    set_code_folder(Path(path).resolve().parent)
    attach = None
    if args.command == "attach":  # checked here, so that a run that is not there is one line, not an empty console
        from engine.io.text import shown_path
        from engine.runs.detach import find_run

        attach = find_run(args.run, args.runs_dir or settings.run.runs_dir)
        if args.run is None:  # picked for the user: say which
            print(f"trainconsole: attach: the newest running run, {shown_path(attach)}", file=sys.stderr)
    from tui.app import main as console_main

    return console_main(path, settings, args.console_allowed, attach, notes)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
