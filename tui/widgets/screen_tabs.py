"""The four screens as clickable tabs at the top of each screen."""

from __future__ import annotations

from textual.widgets import Tab, Tabs

SCREENS = (("environment", "1 Environment"), ("configuration", "2 Configuration"), ("training", "3 Training"), ("checkpoints", "4 Checkpoints"))


class ScreenTabs(Tabs):
    def __init__(self, current: str) -> None:
        super().__init__(*(Tab(label, id=f"tab-{mode}") for mode, label in SCREENS), active=f"tab-{current}")
        self.current = current

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        mode = event.tab.id.removeprefix("tab-")
        if mode != self.current:
            self.active = f"tab-{self.current}"  # this screen keeps its own tab; the target screen shows its own
            self.app.switch_mode(mode)
