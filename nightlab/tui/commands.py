
"""The command palette (Ctrl+P): every action by name, for when the key is forgotten."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from nightlab.agent.states import Mode
from nightlab.tui import keymap
from nightlab.tui.screens.help import key_display
from nightlab.tui.themes import available_themes

if TYPE_CHECKING:
    from nightlab.tui.app import NightlabApp


def system_commands(app: NightlabApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    from nightlab.tui.screens.main import MainScreen

    def keyed(binding_id: str, help: str) -> str:
        """The help line with the key that does the same (as remapped in tui.toml), so the palette teaches it."""
        key = key_display(keymap.effective_key(keymap.BY_ID[binding_id], app.user.keys))
        # the palette reads help as markup: unescaped, "[q]" was a style and "[E]" a colour, neither shown (Textual's
        # own escape() leaves a capital or "?" alone)
        return f"[{key}]  {help}".replace("[", "\\[")

    yield SystemCommand("Mode: toggle step / autonomous", keyed("toggle_mode", "persisted for the session"),
                        app.action_toggle_mode)
    yield SystemCommand("Mode: step", keyed("step_mode_interrupt", "ask before each run"),
                        lambda: app.set_mode(Mode.STEP))
    # the same path as the key (app.set_mode: saved with the session, the engine told, the same notice)
    yield SystemCommand("Mode: autonomous", keyed("toggle_mode", "run proposals without asking, within the budget"),
                        lambda: app.set_mode(Mode.AUTONOMOUS))
    main = app.main
    if isinstance(screen, MainScreen) and main is not None:
        yield SystemCommand("Engine: start or resume", keyed("start_engine", "run the experiment loop here"),
                            main.action_start_engine)
        yield SystemCommand("Approve the current request", keyed("approve", "the highlighted row of the queue"),
                            main.action_approve)
        yield SystemCommand("Reject the current request", keyed("reject", "with feedback the agent reads"),
                            main.action_reject)
        yield SystemCommand("Edit the proposal's hypothesis", keyed("edit_hypothesis", "in $EDITOR"),
                            main.action_edit_hypothesis)
        yield SystemCommand("Edit the proposal's patch", keyed("edit_patch", "the changed files in $EDITOR"),
                            main.action_edit_patch)
        yield SystemCommand("Review and promote the selected experiment",
                            keyed("promote", "diff against your branch, then commit"), main.action_promote)
        yield SystemCommand("Show the selected experiment's diff", keyed("show_diff", "against its parent"),
                            main.action_show_diff)
        yield SystemCommand("Open the selected experiment's log", keyed("open_log", "full log, searchable"),
                            main.action_open_log)
        yield SystemCommand("Stop the selected running job", keyed("stop_job", "asks first"), main.action_stop_job)
        yield SystemCommand("View: tree / ranked table", keyed("toggle_view", "toggle the experiment list"),
                            main.action_toggle_view)
        yield SystemCommand("Write the session report",
                            keyed("write_report", "HTML + Markdown with plots, in .nightlab/reports/"),
                            main.action_write_report)
        yield SystemCommand("Show the plan", keyed("show_plan", "phases, runs used / budget, the current one"),
                            main.action_show_plan)
        yield SystemCommand("Follow the running job", keyed("jump_running", "the newest running experiment"),
                            main.action_jump_running)
    for name in available_themes():
        yield SystemCommand(f"Theme: {name}", "Switch and remember", lambda n=name: app.apply_theme(n, remember=True))
    yield SystemCommand("Keys", keyed("help", "every binding, and how to remap it"), app.action_help)
    yield SystemCommand("Quit", keyed("quit", "training jobs keep running"), app.action_quit)
