"""`P`: the session's plan (as `nightlab plan` shows it): phases in order with runs used / budget, the estimate, the
current phase; `a` approves a draft. Opening it drafts a plan when there is none (the desk's action, in a thread:
the builtin policy lists its moves); editing stays `nightlab plan`'s (flags or TOML)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from nightlab.agent.views import plan_lines, plan_time_lines
from nightlab.errors import NightlabError
from nightlab.tui import keymap

NO_PLAN = "No plan: `nightlab plan` drafts one."


def plan_text(plan: dict[str, Any] | None) -> Text:
    if plan is None:
        return Text(NO_PLAN)
    head = "approved" if plan["approved"] else "draft: not followed until `nightlab plan --approve`"
    out = Text(f"plan: {head}\n", style="bold")
    out.append(f"baseline's diagnosis: {', '.join(plan['diagnosis']) or 'nothing to say'}\n", style="")
    for line in plan_lines(plan):
        out.append(line + "\n", style="bold" if line.startswith(" >") else "")
    for line in plan_time_lines(plan):
        out.append(line + "\n", style="dim")
    return out


class PlanScreen(ModalScreen[None]):
    BINDINGS = [*keymap.bindings("dialog", only=("cancel",)), *keymap.bindings("main", only=("show_plan",)),
                *keymap.bindings("plan")]

    class Loaded(Message):
        def __init__(self, plan: dict[str, Any] | None) -> None:
            super().__init__()
            self.plan = plan

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help-dialog"):
            yield Static(Text("Plan", style="bold"), classes="dialog-title")
            yield Static(Text("reading…", style="dim"), id="plan-body")
            yield Static(Text("a: approve · edit with `nightlab plan --drop/--budget/--order/--edit` · esc: back",
                              style="dim"))

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exit_on_error=False, name="plan")
    def _load(self, approve: bool = False) -> None:
        desk = self.app.desk()  # type: ignore[attr-defined]
        try:
            plan = desk.edit_plan(approve=True) if approve else desk.draft_plan()
        except NightlabError as err:
            self.app.call_from_thread(self.app.notify, str(err), severity="error")
            plan = desk.plan_view()
        self.post_message(self.Loaded(plan))

    def on_plan_screen_loaded(self, message: Loaded) -> None:
        self.query_one("#plan-body", Static).update(plan_text(message.plan))

    def action_approve_plan(self) -> None:
        self._load(approve=True)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_show_plan(self) -> None:
        self.dismiss(None)
