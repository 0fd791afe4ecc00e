"""The screens as clickable tabs at the top of each screen."""

from __future__ import annotations

from textual.widgets import Tab, Tabs

from tui.screen_table import SCREENS


class ScreenTabs(Tabs):
    def __init__(self, current: str) -> None:
        super().__init__(*(Tab(f"{e.key} {e.title}", id=f"tab-{e.mode}") for e in SCREENS), active=f"tab-{current}")
        self.current = current

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        mode = event.tab.id.removeprefix("tab-")
        if mode != self.current:
            self.active = f"tab-{self.current}"  # this screen keeps its own tab; the target screen shows its own
            self.app.switch_mode(mode)
