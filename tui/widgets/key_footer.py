"""Textual's Footer, showing the keys that fit on its one line, rebuilt only when they change."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from tui import textual_compat

KEY_FRAME = 3  # cells of a key besides its key and description: Footer's padding, 1 either side of the key, 1 after
PALETTE_FRAME = 2  # the palette key's own: its left border and right padding (it is docked at the right end)


class KeyFooter(Footer):
    """A Footer whose keys fit its width, and that skips its rebuild when they are the keys it shows already.

    Keys that do not fit are left out whole, never cut: the palette's first (ctrl+p), then the screen's own from
    the last one back; ? Help and q Quit stay, and the help lists every key. Textual's Footer recomposes on every
    bindings update: each screen switch mounted and styled its ~10 key widgets again, about half of the time
    a switch took while a run was training.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple | None = None

    def _width(self) -> int:
        return self.size.width or self.app.size.width  # docked across the screen: the app's width before layout

    def _fitting(self, screen: Screen) -> tuple[list[tuple], bool]:
        """The shown keys (binding, enabled, tooltip) that fit the width, in their order; whether the palette's fits."""
        by_action: dict[str, tuple] = {}
        for node, binding, enabled, tooltip in screen.active_bindings.values():
            if binding.show and binding.action not in by_action:  # as Footer: one key per action
                by_action[binding.action] = (binding, enabled, tooltip, node is self.app)
        keys = list(by_action.values())
        widths = {key[0].action: key_width(self.app.get_key_display(key[0]), key[0].description) for key in keys}
        room = self._width() - sum(widths.values())
        palette = self._palette(screen)
        if palette is not None and room >= palette:
            return [key[:3] for key in keys], True
        for key in _drop_order(keys):
            if room >= 0:
                break
            keys.remove(key)
            room += widths[key[0].action]
        return [key[:3] for key in keys], False

    def _palette(self, screen: Screen) -> int | None:
        """The palette key's width, or None where it is not shown."""
        if not (self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE):
            return None
        entry = screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        if entry is None:
            return None
        binding = entry[1]  # drawn compact: `key description`, in its frame
        return cell_len(self.app.get_key_display(binding)) + 1 + cell_len(binding.description) + PALETTE_FRAME

    def compose(self) -> ComposeResult:
        keys, palette = self._fitting(self.screen) if textual_compat.footer_has_keys(self) else ([], False)
        actions = {binding.action for binding, _, _ in keys}
        for widget in super().compose():  # Footer's keys: each has the action it runs
            if widget.has_class("-command-palette"):
                if palette:
                    yield widget
            elif getattr(widget, "action", None) in actions:
                yield widget

    def _shown_now(self, screen: Screen) -> tuple:
        keys, palette = self._fitting(screen)
        return tuple((b.key, b.description, b.action, enabled, tooltip) for b, enabled, tooltip in keys), palette

    def bindings_changed(self, screen: Screen) -> None:
        ready = screen.app.app_focus and self.is_attached and screen is self.screen
        if ready:
            shown = self._shown_now(screen)
            if shown == self._shown and textual_compat.footer_has_keys(self):
                return
            self._shown = shown
        super().bindings_changed(screen)

    def on_resize(self, event: events.Resize) -> None:
        if not textual_compat.footer_has_keys(self):
            return
        shown = self._shown_now(self.screen)
        if shown != self._shown:  # wider or narrower: other keys fit
            self._shown = shown
            self.call_after_refresh(self.recompose)


def key_width(key_display: str, description: str) -> int:
    """The cells a FooterKey takes (Footer's default style): ` key description `, or the key alone."""
    return cell_len(key_display) + cell_len(description) + KEY_FRAME if description else cell_len(key_display)


def _drop_order(keys: list[tuple]) -> list[tuple]:
    """The order keys are left out in: the screen's own from its last, then the app's from its last."""
    return [key for key in reversed(keys) if not key[3]] + [key for key in reversed(keys) if key[3]]
