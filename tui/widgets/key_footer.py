"""Textual's Footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

from tui import textual_compat


class KeyFooter(Footer):
    """A Footer that skips its rebuild when a screen switch or a focus change leaves its keys as they were.

    Textual's Footer recomposes on every bindings update: each screen switch
    mounted and styled its ~10 key widgets again, about half of the time a
    switch took while a run was training.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple | None = None

    def _keys(self, screen: Screen) -> tuple:
        return tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for _, binding, enabled, tooltip in screen.active_bindings.values()
            if binding.show
        )

    def bindings_changed(self, screen: Screen) -> None:
        ready = screen.app.app_focus and self.is_attached and screen is self.screen
        if ready:
            keys = self._keys(screen)
            if keys == self._shown and textual_compat.footer_has_keys(self):
                return
            self._shown = keys
        super().bindings_changed(screen)
