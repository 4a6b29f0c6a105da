"""The keys people already know in lists (vim, less, k9s, lazygit): j / k, g / G, Home / End move the cursor."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.widgets import DataTable, OptionList

from nightlab.tui import keymap


class ListKeys:
    """Mixed into the DataTables: the `list` scope's bindings, and first / last row actions (DataTable's own Home
    and End only scroll the view; these move the cursor, so the selection follows)."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings("list")

    def action_first_row(self: Any) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self: Any) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class ListTable(ListKeys, DataTable[Text]):
    """A plain DataTable with the list keys (the projects overview)."""

    BINDINGS = ListKeys.BINDINGS


class ListOptions(OptionList):
    """An OptionList with the list keys (the review's files)."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings("list")

    def action_first_row(self) -> None:
        self.action_first()

    def action_last_row(self) -> None:
        self.action_last()


class ScrollKeys:
    """Mixed into a scrolling log (the events pane): the same keys scroll it, as they do in less."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings("list")

    def action_cursor_down(self: Any) -> None:
        self.scroll_down(animate=False)

    def action_cursor_up(self: Any) -> None:
        self.scroll_up(animate=False)

    def action_first_row(self: Any) -> None:
        self.scroll_home(animate=False)

    def action_last_row(self: Any) -> None:
        self.scroll_end(animate=False)
