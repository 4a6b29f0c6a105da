"""The full log in a virtualised viewer: any size, search with `/`, `n`, `N`, follows the tail when at the end."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from nightlab.tui import keymap
from nightlab.tui.messages import ReportsWorkerErrors
from nightlab.tui.narrow import fit_to_width
from nightlab.tui.widgets.logview import LogFileView


class LogViewerScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS = keymap.bindings("logview")

    class Found(Message):
        def __init__(self, needle: str, line: int | None, forward: bool, rank: int = 0, total: int = 0) -> None:
            super().__init__()
            self.needle = needle
            self.line = line
            self.forward = forward
            self.rank = rank  # matches up to and including the found line's first one
            self.total = total

    def __init__(self, path: Path, title: str) -> None:
        super().__init__(id="logviewer")
        self.path = path
        self.title_text = title
        self.needle = ""

    def compose(self) -> ComposeResult:
        yield Static(f"{self.title_text} — {self.path.name}", id="logviewer-header", markup=False)
        yield LogFileView(self.path, id="logfile")
        yield Input(placeholder="search (enter: next match, esc: close)", id="log-search")
        yield Footer()

    def on_mount(self) -> None:
        fit_to_width(self)
        self.query_one("#log-search").display = False
        self.query_one(LogFileView).focus()

    def on_resize(self) -> None:
        fit_to_width(self)

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.value = self.needle
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.needle = event.value
        view = self.query_one(LogFileView)
        view.needle = self.needle
        view.border_subtitle = f"/{self.needle}" if self.needle else ""
        box = self.query_one("#log-search", Input)
        box.display = False
        view.focus()
        start = view.current if view.current is not None else view.top_line() - 1
        self._find(self.needle, start, True)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False, name="log search")
    def _find(self, needle: str, start: int, forward: bool) -> None:
        index = self.query_one(LogFileView).index
        line = index.find(needle, start, forward)
        total = index.count(needle)
        rank = index.count(needle, before_line=line) + 1 if line is not None else 0
        self.post_message(self.Found(needle, line, forward, rank, total))

    def on_log_viewer_screen_found(self, message: Found) -> None:
        view = self.query_one(LogFileView)
        if message.line is None:
            view.border_subtitle = f"/{message.needle} · {message.total} matches"
            self.notify(f"“{message.needle}”: no {'further' if message.forward else 'earlier'} match "
                        f"({message.total} in all)")
            return
        view.border_subtitle = f"/{message.needle} · match {message.rank}/{message.total}"
        view.go_to(message.line)

    def _again(self, forward: bool) -> None:
        if not self.needle:
            self.action_search()
            return
        view = self.query_one(LogFileView)
        start = view.current if view.current is not None else view.top_line() - (1 if forward else 0)
        self._find(self.needle, start, forward)

    def action_next_match(self) -> None:
        self._again(True)

    def action_prev_match(self) -> None:
        self._again(False)

    def action_follow(self) -> None:
        view = self.query_one(LogFileView)
        view.set_follow(not view.follow)
        self.notify("Following the end of the log." if view.follow else "Stopped following.")

    def action_top(self) -> None:
        view = self.query_one(LogFileView)
        view.follow = False
        view.current = None
        view.scroll_home(animate=False)

    def action_bottom(self) -> None:
        view = self.query_one(LogFileView)
        view.current = None
        view.set_follow(True)

    def action_close(self) -> None:
        box = self.query_one("#log-search", Input)
        if box.display:
            box.display = False
            self.query_one(LogFileView).focus()
            return
        self.dismiss(None)
