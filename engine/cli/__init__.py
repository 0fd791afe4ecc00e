"""The headless command line, one module per group of commands; `main` runs one command (tui.cli calls it too)."""

from engine.cli import spinner

spinner.start_early()  # a status line at once, before the commands' modules load (engine.cli.spinner)

from engine.cli.dispatch import DEFAULT_SETTINGS, main  # noqa: E402

__all__ = ["DEFAULT_SETTINGS", "main"]
