"""The footer of every mlbox screen: Textual's look, but each set of keys is built once.

Textual's footer composes its keys again (a widget per key, styled and laid
out) whenever the screen's bindings may have changed, which is every focus
change: moving from the filter to the runs table, opening and closing a
dialog. Over a big table that cost 40-50 ms of the key press that applied a
filter (issue 18). This footer keeps the keys of the last few key sets it
showed, each in its own group, and shows the group of the current set: a
focus change that goes back to a set shown before builds nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

KEPT_SETS = 12
"""Key sets kept built (a screen and its filter box, a dialog … rarely more than a handful)."""


class Key(NamedTuple):
    key: str
    display: str
    description: str
    action: str
    enabled: bool
    tooltip: str

    def widget(self, compact: bool, classes: str = "") -> FooterKey:
        widget = FooterKey(
            self.key,
            self.display,
            self.description,
            self.action,
            disabled=not self.enabled,
            tooltip=self.tooltip,
            classes=f"{classes} -compact" if compact else classes,
        )
        widget.set_reactive(FooterKey.compact, compact)
        return widget


class KeysFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._groups: OrderedDict[tuple[Key, ...], HorizontalGroup] = OrderedDict()
        self._shown: tuple[Key, ...] | None = None
        self._palette: Key | None = None

    def shown_keys(self) -> tuple[tuple[Key, ...], Key | None]:
        """The keys the footer draws (each binding's key, label, action, whether enabled) and the
        command palette's, drawn apart on the right."""
        app, keys, palette = self.app, [], None
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            key = Key(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                binding.action,
                enabled,
                tooltip,
            )
            if binding.action == "command_palette" and binding.key == app.COMMAND_PALETTE_BINDING:
                palette = key
            elif binding.show:
                keys.append(key)
        if not (self.show_command_palette and app.ENABLE_COMMAND_PALETTE):
            palette = None
        return tuple(keys), palette

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        keys, palette = self.shown_keys()
        if palette != self._palette:
            self._palette = palette
            await self.query(".-command-palette").remove()
            if palette is not None:
                await self.mount(palette.widget(True, "-command-palette"))  # compact, as Textual draws it
        if keys == self._shown:
            return
        self._shown = keys
        group = self._groups.get(keys)
        if group is None:
            group = HorizontalGroup(*(k.widget(self.compact) for k in keys), classes="binding-group")
            self._groups[keys] = group
            await self.mount(group)
            while len(self._groups) > KEPT_SETS:
                _, oldest = self._groups.popitem(last=False)
                await oldest.remove()
        self._groups.move_to_end(keys)
        for other in self._groups.values():
            other.display = other is group
