"""The headless command line, one module per group of commands; `main` runs one command (tui.cli calls it too)."""

from engine.cli.dispatch import DEFAULT_SETTINGS, main

__all__ = ["DEFAULT_SETTINGS", "main"]
