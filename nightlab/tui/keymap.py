"""Every key binding in one table, each with an id, so users can remap any of them from their config.

Screens and widgets build their `BINDINGS` from this table (posting's pattern) instead of listing keys inline:
the help screen, the footer and the user's `[keys]` overrides then all agree on one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType
from textual.keys import Keys, key_to_character


@dataclass(frozen=True)
class Key:
    """One remappable binding: `id` is what users write in `[keys]`, `scope` says where it applies."""

    id: str
    key: str
    action: str
    description: str
    scope: str
    show: bool = True
    priority: bool = False
    help: str = ""  # the longer text of the help screen (the footer has room for `description` only)


SCOPES: dict[str, str] = {
    "app": "Everywhere",
    "main": "Main screen",
    "review": "Diff review",
    "logview": "Log viewer",
    "dialog": "Dialogs",
    "init": "Setup",
    "plan": "Plan",
    "list": "Lists (experiments, approvals)",
}

KEYS: tuple[Key, ...] = (
    # everywhere
    Key("quit_anywhere", "ctrl+q", "quit", "Quit", "app", show=False, priority=True,
        help="Quit from any screen (jobs keep running)"),
    Key("help", "question_mark", "help", "Keys", "app",
        help="Show this list of keys"),
    Key("toggle_mode", "shift+tab", "toggle_mode", "Mode", "app", priority=True,
        help="Toggle STEP / AUTONOMOUS (saved with the session)"),
    Key("step_mode_interrupt", "ctrl+c", "step_mode", "Step mode", "app", show=False, priority=True,
        help="Drop to step mode (never quits, never kills jobs; esc never changes the mode)"),
    Key("next_theme", "ctrl+t", "next_theme", "Theme", "app", show=False,
        help="Next theme (remembered)"),
    Key("command_palette", "ctrl+p", "command_palette", "Commands", "app", show=False, priority=True,
        help="Command palette: every action by name"),
    Key("projects", "o", "projects", "Projects", "app", show=False,
        help="Every project you have run (as `nightlab projects`); enter opens one"),
    # main screen
    Key("approve", "a", "approve", "Approve", "main",
        help="Approve the highlighted request (a promote request opens the review)"),
    Key("reject", "r", "reject", "Reject", "main",
        help="Reject the highlighted request, with feedback the agent reads"),
    Key("edit_hypothesis", "e", "edit_hypothesis", "Edit", "main", show=False,
        help="Edit the proposal's title and rationale in $EDITOR"),
    Key("edit_patch", "E", "edit_patch", "Edit patch", "main", show=False,
        help="Edit the proposal's changed files in $EDITOR"),
    Key("promote", "p", "promote", "Promote", "main",
        help="Review the selected experiment against your branch, then commit it"),
    Key("show_diff", "d", "show_diff", "Diff", "main", show=False,
        help="Show the selected experiment's diff against its parent"),
    Key("open_log", "l", "open_log", "Log", "main",
        help="Open the selected experiment's full log (searchable)"),
    Key("start_engine", "s", "start_engine", "Start", "main",
        help="Resume an unfinished session, or start a new one (asks first: it spends budget)"),
    Key("stop_job", "x", "stop_job", "Stop", "main",
        help="Stop the selected running job (asks first)"),
    Key("toggle_view", "t", "toggle_view", "Ranked", "main", show=False,
        help="Switch between the tree and the ranked table"),
    Key("show_plan", "P", "show_plan", "Plan", "main", show=False,
        help="The session's plan: phases, runs used / budget, the current phase (`nightlab plan` edits it)"),
    Key("write_report", "R", "write_report", "Report", "main", show=False,
        help="Write the session's report (HTML + Markdown with plots) and say where"),
    Key("quit", "q", "app.quit", "Quit", "main",
        help="Quit (the engine stops after its step; jobs keep running)"),
    Key("leave_zoom", "escape", "leave_zoom", "Unzoom", "main", show=False,
        help="Leave a zoomed pane (never changes the mode: shift+tab or ctrl+c do)"),
    Key("follow_log", "f", "follow_log", "Follow", "main", show=False,
        help="Follow the end of the live log on / off"),
    Key("wrap_log", "w", "wrap_log", "Wrap", "main", show=False,
        help="Log pane: wrap long lines at its width on / off (on at start)"),
    Key("jump_running", "full_stop", "jump_running", "Running job", "main", show=False,
        help="Jump to the running job and keep following new ones"),
    Key("filter_tree", "slash", "filter_tree", "Filter", "main", show=False,
        help="Filter the experiments by #id, title or status (esc clears)"),
    Key("next_run", "right_square_bracket", "next_run", "Next run", "main", show=False,
        help="Log pane: the experiment's next run (its seed re-runs)"),
    Key("prev_run", "left_square_bracket", "prev_run", "Prev run", "main", show=False,
        help="Log pane: the experiment's previous run"),
    Key("zoom", "z", "zoom", "Zoom pane", "main", show=False,
        help="Zoom the focused pane (z or esc restores)"),
    # lists: the experiment tree / ranked table and the approval queue
    Key("list_down", "j", "cursor_down", "Down", "list", show=False, help="Next row (also ↓)"),
    Key("list_up", "k", "cursor_up", "Up", "list", show=False, help="Previous row (also ↑)"),
    Key("list_first", "g,home", "first_row", "First", "list", show=False, help="First row"),
    Key("list_last", "G,end", "last_row", "Last", "list", show=False, help="Last row"),
    # diff review
    Key("review_accept", "a", "accept", "Accept", "review",
        help="Accept: promote (commit onto your branch) or approve the run"),
    Key("review_reject", "r", "reject", "Reject", "review",
        help="Reject, with feedback"),
    Key("review_split", "s", "toggle_split", "Side by side", "review",
        help="Unified / side-by-side diff"),
    Key("review_next_file", "right_square_bracket", "next_file", "Next file", "review", show=False,
        help="Next file"),
    Key("review_prev_file", "left_square_bracket", "prev_file", "Prev file", "review", show=False,
        help="Previous file"),
    Key("review_close", "escape,q", "close", "Back", "review",
        help="Back without deciding (esc or q)"),
    # log viewer
    Key("log_search", "slash", "search", "Search", "logview",
        help="Search (case-insensitive)"),
    Key("log_next_match", "n", "next_match", "Next", "logview",
        help="Next match"),
    Key("log_prev_match", "N", "prev_match", "Previous", "logview",
        help="Previous match"),
    Key("log_follow", "f", "follow", "Follow", "logview",
        help="Follow the end of the file on / off"),
    Key("log_top", "g", "top", "Top", "logview", show=False,
        help="Go to the top"),
    Key("log_bottom", "G", "bottom", "Bottom", "logview", show=False,
        help="Go to the end and follow"),
    Key("log_close", "escape,q", "close", "Back", "logview",
        help="Back (or close the search box; esc or q)"),
    # dialogs
    Key("dialog_yes", "y", "yes", "Yes", "dialog",
        help="Yes"),
    Key("dialog_no", "n", "no", "No", "dialog",
        help="No"),
    Key("dialog_cancel", "escape,q", "cancel", "Cancel", "dialog",
        help="Cancel / close (q too, except where text is typed)"),
    # the plan (P)
    Key("plan_approve", "a", "approve_plan", "Approve", "plan",
        help="Approve the plan shown: the engine follows it from its next proposal"),
    # setup (no nightlab.toml yet)
    Key("init_run", "i", "run_init", "Run init", "init",
        help="Run nightlab init here"),
    Key("init_open", "enter", "open_project", "Open project", "init",
        help="Once init is done: open the project"),
    Key("init_quit", "q,escape", "app.quit", "Quit", "init",
        help="Quit (nothing was written)"),
)

BY_ID: dict[str, Key] = {k.id: k for k in KEYS}


def bindings(scope: str, only: tuple[str, ...] | None = None) -> list[BindingType]:
    """The Textual bindings of one scope (or only those with the given actions), each carrying its id so the App's
    keymap can remap it."""
    return [
        Binding(k.key, k.action, k.description, show=k.show, priority=k.priority, id=k.id)
        for k in KEYS
        if k.scope == scope and (only is None or k.action in only)
    ]


def effective_key(key: Key, overrides: dict[str, str]) -> str:
    """The key a binding answers to once the user's overrides apply."""
    return overrides.get(key.id, key.key)


def unknown_ids(overrides: dict[str, str]) -> list[str]:
    """Override ids that match no binding: almost always a typo the user wants to hear about."""
    return sorted(i for i in overrides if i not in BY_ID)


MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_NAMED = frozenset(k.value for k in Keys if "+" not in k.value and not k.value.startswith("<"))


def key_problem(key: str) -> str | None:
    """Why `key` (as written in `[keys]`, e.g. "ctrl+a", "question_mark", "q,escape") names no key a terminal
    sends, or None when every part of it does."""
    for part in (p.strip() for p in key.split(",")):
        *mods, base = part.split("+")
        bad = [m for m in mods if m not in MODIFIERS]
        if bad:
            return f"{bad[0]!r} is not a modifier (use ctrl, shift, alt, meta, super)"
        if not base:
            return f"{part!r} has no key after its modifiers"
        if len(base) == 1:
            if not base.isprintable() or base.isspace():
                return f"{base!r} is not a printable key"
            continue
        char = key_to_character(base) if base not in _NAMED else None
        if base not in _NAMED and not (char is not None and char.isascii() and char.isprintable()):
            return f"{base!r} is not a key name (e.g. a, A, f5, enter, escape, space, question_mark)"
    return None


def _parts(key: str) -> set[str]:
    return {p.strip() for p in key.split(",") if p.strip()}


def check_overrides(overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The overrides that can be applied, and one problem per override that cannot: an unknown id, a key name no
    terminal sends, or a key another binding of the same screen already answers to (`approve = "q"` would take
    quit's key, and then `q` starts a run). A refused override leaves the default key in place."""
    good: dict[str, str] = {}
    problems: list[str] = []
    for kid in unknown_ids(overrides):
        problems.append(f"keys.{kid}: no such binding id (press ? for every id)")
    candidates = {kid: key for kid, key in overrides.items() if kid in BY_ID}
    for kid, key in list(candidates.items()):
        why = key_problem(key)
        if why is not None:
            problems.append(f"keys.{kid} = {key!r}: {why}")
            del candidates[kid]
    for kid, key in candidates.items():
        mine = BY_ID[kid]
        clash = next((k for k in KEYS if k.id != kid and (k.scope == mine.scope or "app" in (k.scope, mine.scope))
                      and _parts(key) & _parts(effective_key(k, candidates))), None)
        if clash is not None:
            where = SCOPES[clash.scope].lower()
            problems.append(f"keys.{kid} = {key!r}: {clash.id} ({clash.description}, {where}) already uses it")
            continue
        good[kid] = key
    return good, problems
