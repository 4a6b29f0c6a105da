"""`?`: every binding with the key it answers to now and the id to remap it by."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from nightlab.tui import keymap
from nightlab.tui.userconfig import config_path, display_path


def key_display(key: str) -> str:
    names = {"question_mark": "?", "full_stop": ".", "slash": "/", "right_square_bracket": "]",
             "left_square_bracket": "[", "escape": "esc", "shift+tab": "shift+tab"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [*keymap.bindings("dialog", only=("cancel",)), *keymap.bindings("app", only=("help",))]

    def __init__(self, overrides: dict[str, str]) -> None:
        super().__init__()
        self.overrides = overrides

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("key", no_wrap=True, width=12)
        table.add_column("does", ratio=1)
        table.add_column(Text("id (remap in [keys])"), no_wrap=True)
        for scope, title in keymap.SCOPES.items():
            table.add_row(Text(title, style="bold underline"), "", "")
            for k in keymap.KEYS:
                if k.scope != scope:
                    continue
                key = keymap.effective_key(k, self.overrides)
                mark = " *" if k.id in self.overrides else ""
                table.add_row(key_display(key) + mark, k.help or k.description, Text(k.id, style="dim"))
            table.add_row("", "", "")
        self.table = table
        with VerticalScroll(classes="dialog help-dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield Static(table, id="help-table")
            yield Static(Text(f"Remap any key in {display_path(config_path())}: [keys] id = \"key\" "
                              "(* = remapped). Ctrl+P lists every command.", style="dim"))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_help(self) -> None:
        self.dismiss(None)
