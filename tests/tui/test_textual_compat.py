"""What tui.textual_compat relies on in Textual's private names: each test fails when that behaviour changes."""

from __future__ import annotations

from textual.app import App
from textual.widgets import OptionList

from pilot_helpers import run
from tui import textual_compat


class HiddenList(App):
    CSS = "OptionList { display: none; }"

    def compose(self):
        yield OptionList(*[f"option {i}" for i in range(30)])


def test_paging_a_list_not_laid_out_moves_to_its_ends():
    async def scenario():
        app = HiddenList()
        async with app.run_test() as pilot:
            options = app.query_one(OptionList)
            options.highlighted = 3
            textual_compat.guard_option_list_paging()
            options.action_page_down()
            assert options.highlighted == 29
            options.action_page_up()
            assert options.highlighted == 0
            await pilot.pause()

    run(scenario())


def test_unguarded_paging_still_fails_where_the_guard_is_needed():
    """Drop the guard once Textual fixes this: the test then fails and says so."""
    guarded = OptionList._move_page
    original = getattr(guarded, "__wrapped_original__", None)

    async def scenario():
        app = HiddenList()
        async with app.run_test():
            options = app.query_one(OptionList)
            options.highlighted = 3
            try:
                original(options, 1)
            except KeyError:
                return
            raise AssertionError("Textual pages a list that is not laid out: the guard in tui.textual_compat can go")

    run(scenario())


def test_the_private_names_used_exist():
    assert callable(App._handle_exception)
    app = App()
    assert isinstance(app._exit_renderables, list)
    textual_compat.replace_exit_traceback(app, "one line")
    assert app._exit_renderables == ["one line"]
    assert isinstance(app._css_update_count, int)
