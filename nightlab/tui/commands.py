"""The command palette (Ctrl+P): every action by name, for when the key is forgotten."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from nightlab.tui.themes import available_themes

if TYPE_CHECKING:
    from nightlab.tui.app import NightlabApp


def system_commands(app: NightlabApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    from nightlab.tui.screens.main import MainScreen

    yield SystemCommand("Mode: toggle step / autonomous", "Shift+Tab; persisted for the session",
                        app.action_toggle_mode)
    yield SystemCommand("Mode: step", "Ask before each run (Esc)", lambda: app.set_mode("step"))
    yield SystemCommand("Mode: autonomous", "Run proposals without asking, within the budget",
                        lambda: app.set_mode("autonomous"))
    main = app.main
    if isinstance(screen, MainScreen) and main is not None:
        yield SystemCommand("Engine: start or resume", "Run the experiment loop in this window",
                            main.action_start_engine)
        yield SystemCommand("Approve the current request", "The highlighted row of the approval queue",
                            main.action_approve)
        yield SystemCommand("Reject the current request", "With feedback the agent reads", main.action_reject)
        yield SystemCommand("Edit the proposal's hypothesis", "In $EDITOR", main.action_edit_hypothesis)
        yield SystemCommand("Edit the proposal's patch", "The changed files in $EDITOR", main.action_edit_patch)
        yield SystemCommand("Review and promote the selected experiment", "Diff against your branch, then commit",
                            main.action_promote)
        yield SystemCommand("Show the selected experiment's diff", "Against its parent", main.action_show_diff)
        yield SystemCommand("Open the selected experiment's log", "Full log, searchable", main.action_open_log)
        yield SystemCommand("Stop the selected running job", "Asks first", main.action_stop_job)
        yield SystemCommand("View: tree / ranked table", "Toggle the experiment list", main.action_toggle_view)
        yield SystemCommand("Write the session report", "HTML + Markdown with plots, in .nightlab/reports/",
                            main.action_write_report)
        yield SystemCommand("Follow the running job", "Move the cursor to the newest running experiment",
                            main.action_jump_running)
    for name in available_themes():
        yield SystemCommand(f"Theme: {name}", "Switch and remember", lambda n=name: app.apply_theme(n, remember=True))
    yield SystemCommand("Keys", "Every binding, and how to remap it", app.action_help)
    yield SystemCommand("Quit", "Training jobs keep running", app.action_quit)
