"""The footer builds each set of keys once: moving the focus between the filter and the runs
table shows the set built before (the same widgets), and the keys shown are the focused ones."""

from __future__ import annotations

from textual.containers import HorizontalGroup
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from mlbox.services import Services
from mlbox.tui.widgets.keys_footer import KeysFooter
from tests.test_tui import app_for, seeded, settle  # noqa: F401 (fixture)


def _shown(footer: KeysFooter) -> HorizontalGroup:
    [group] = [g for g in footer.query(HorizontalGroup) if g.display]
    return group


async def test_focus_changes_show_key_sets_built_before(seeded: Services) -> None:  # noqa: F811
    app = app_for(seeded)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(KeysFooter)
        table_keys = _shown(footer)
        table_actions = [k.action for k in table_keys.query(FooterKey)]
        app.screen.query_one("#filter", Input).focus()
        await settle(pilot)
        filter_keys = _shown(footer)
        assert filter_keys is not table_keys
        assert [k.action for k in filter_keys.query(FooterKey)] != table_actions
        await pilot.press("escape")  # back to the table
        await settle(pilot)
        assert app.focused is not None and not isinstance(app.focused, Input)
        assert _shown(footer) is table_keys  # the same widgets, not built again
        app.screen.query_one("#filter", Input).focus()
        await settle(pilot)
        assert _shown(footer) is filter_keys
        assert len(footer.query(HorizontalGroup)) == 2
        assert len(footer.query(".-command-palette")) == 1
