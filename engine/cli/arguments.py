"""What every group of commands shares in reading its arguments: the parser's one-line errors, --allow-import,
and the settings file the arguments name."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SETTINGS = "settings.toml"
ALLOW_HELP = (
    "let settings from a checkpoint or run folder import this code (repeatable); your own settings need no flag"
)


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def add_allow_import(parser: argparse.ArgumentParser, dest: str = "allowed") -> None:
    parser.add_argument(
        "--allow-import", dest=dest, action="append", default=[], metavar="MODULE:NAME", help=ALLOW_HELP
    )


def settings_path(args) -> str:
    """The settings file: a path named with -c must exist; ./settings.toml may be absent (built-in defaults)."""
    from engine.settings.config import SettingsError

    named = getattr(args, "config_run", None) or args.config
    if named is not None and not Path(named).is_file():
        raise SettingsError(f"{named}: no such settings file")
    return named or DEFAULT_SETTINGS
