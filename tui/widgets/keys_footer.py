"""The footer of every mlbox screen: Textual's, rebuilt only when the keys it shows change.

Textual's footer composes its keys again (a widget per key, styled and laid
out) whenever the screen's bindings may have changed, which is every focus
change: moving from the filter to the runs table, opening and closing a
dialog. Most of those leave the shown keys as they were, and the rebuild cost
tens of milliseconds of each such key press over a big table. This footer
keeps what it showed last and rebuilds only when that differs.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.widgets import Footer


class KeysFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._shown: Hashable | None = None

    def shown_keys(self) -> Hashable:
        """What the footer draws: each shown binding's key, label, action and whether it is enabled."""
        app = self.app
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (binding.key, app.get_key_display(binding), binding.description, binding.action, enabled, tip)
                for (_, binding, enabled, tip) in self.screen.active_bindings.values()
                if binding.show or binding.action == "command_palette"
            ),
        )

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        shown = self.shown_keys()
        if shown == self._shown:
            return
        self._shown = shown
        await super().recompose()
