"""No nightlab.toml yet: say so, and offer to run `init` (detect the command and metric, run the baseline)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from nightlab.tui import keymap
from nightlab.tui.narrow import fit_to_width

if TYPE_CHECKING:
    from nightlab.tui.app import NightlabApp


class InitScreen(Screen[None]):
    BINDINGS = keymap.bindings("init")

    def __init__(self, reason: str) -> None:
        super().__init__(id="setup")
        self.reason = reason
        self.running = False
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog setup-dialog"):
            yield Static("This project is not set up for nightlab yet", classes="dialog-title")
            yield Static(self.reason, id="setup-reason", classes="dialog-detail", markup=False)
            yield Static(
                "init finds the training script, runs it once to learn what it reports, and writes nightlab.toml. "
                "Nothing in your code or git history changes.", classes="dialog-detail")
            yield Static("", id="setup-progress", markup=False)
            yield Static("i run init · q quit (or run `nightlab init` in a shell to answer its questions)",
                         classes="dialog-keys")
        yield Footer()

    def on_mount(self) -> None:
        fit_to_width(self)

    def on_resize(self) -> None:
        fit_to_width(self)

    def action_run_init(self) -> None:
        if self.running or self.done:
            return
        self.running = True
        self.progress("starting…")
        cast("NightlabApp", self.app).run_init()

    def progress(self, text: str) -> None:
        self.query_one("#setup-progress", Static).update(text)

    def failed(self) -> None:
        self.running = False

    def finished(self, summary: str) -> None:
        """init is done: show what it detected until the user presses enter (the project loads meanwhile)."""
        self.done = True
        self.query_one(".dialog-title", Static).update("nightlab is set up for this project")
        self.query_one("#setup-reason").display = False  # "no nightlab.toml" under "set up" read as a contradiction
        self.progress(summary)
        self.query_one(".dialog-keys", Static).update("enter open the project · q quit")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_project":
            return self.done
        if action == "run_init":
            return not self.done
        return True

    def action_open_project(self) -> None:
        if self.done:
            self.dismiss(None)
