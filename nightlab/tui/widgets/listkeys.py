"""The keys people already know in lists (vim, less, k9s, lazygit): j / k, g / G, Home / End move the cursor."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import BindingType

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
