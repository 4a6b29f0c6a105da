"""The events pane (lazygit's command log, k9s's events): every decision the engine made, with its reason.

The engine writes each decision to the store's events (refused as a repeat, discarded within the noise, kept after
its confirmation, a fix attempted, the policy exhausted, the budget reached); the snapshot carries the session's
newest ones and this pane shows them, newest at the bottom, following the end unless the user scrolled up.
"""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from nightlab.agent.states import EventKind
from nightlab.agent.views import EventLine
from nightlab.tui.widgets.listkeys import ScrollKeys

# what each kind of event reads as at a glance: an icon and the style class of its line
KIND_LOOK: dict[str, tuple[str, str]] = {
    EventKind.KEPT: ("★", "good"), EventKind.CONFIRM: ("↻", "info"), EventKind.DISCARDED: ("·", "dim"),
    EventKind.DUPLICATE: ("⊘", "warn"), EventKind.REJECTED: ("⊘", "warn"), EventKind.APPROVED: ("✓", "info"),
    EventKind.PROPOSED: ("?", "warn"), EventKind.STARTED: ("▶", "info"), EventKind.FINISHED: ("•", "plain"),
    EventKind.FAILED: ("✗", "bad"), EventKind.LOST: ("✗", "bad"), EventKind.ABANDON: ("✗", "bad"),
    EventKind.POLICY_ERROR: ("!", "bad"), EventKind.EXHAUSTED: ("■", "warn"), EventKind.DONE: ("■", "good"),
    EventKind.NOISE: ("~", "dim"), EventKind.BASELINE: ("▶", "info"), EventKind.HIBERNATE: ("z", "dim"),
    EventKind.NOTE: ("i", "dim"), EventKind.REPORT: ("▤", "dim"), EventKind.BUDGET: ("$", "warn"),
    EventKind.INTERRUPTED: ("■", "warn"), "engine": ("⚙", "dim"), EventKind.SUPERSEDED: ("↷", "dim"),
}
HIDDEN_KINDS = frozenset({EventKind.EDITED})  # the user's own edits: said when they happen, not decisions
# what the engine concluded about an experiment (the details pane shows the latest one as "decided")
DECISION_KINDS = frozenset({EventKind.KEPT, EventKind.CONFIRM, EventKind.DISCARDED, EventKind.DUPLICATE,
                            EventKind.REJECTED, EventKind.APPROVED, EventKind.FAILED, EventKind.LOST,
                            EventKind.ABANDON, EventKind.POLICY_ERROR, EventKind.FINISHED})


def event_text(ev: EventLine, styles: dict[str, object]) -> Text:
    """Icon and the engine's own words (they name the experiment and the reason)."""
    icon, look = KIND_LOOK.get(ev.kind, ("·", "plain"))
    return Text(f"{icon} {ev.message}", styles.get(look))  # type: ignore[arg-type]


class EventsPane(ScrollKeys, RichLog):
    COMPONENT_CLASSES = {"events--good", "events--bad", "events--warn", "events--info", "events--dim"}
    DEFAULT_CSS = "EventsPane { height: 1fr; }"
    ALLOW_MAXIMIZE = True
    BINDINGS = ScrollKeys.BINDINGS

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, auto_scroll=True, min_width=20)
        self.shown: tuple[int, ...] = ()
        self.entries: list[EventLine] = []
        self._wrapped_at = 0

    def styles_by_look(self) -> dict[str, object]:
        return {name: self.get_component_rich_style(f"events--{name}", partial=True)
                for name in ("good", "bad", "warn", "info", "dim")}

    def show(self, events: list[EventLine]) -> None:
        lines = [ev for ev in events if ev.kind not in HIDDEN_KINDS]
        key = tuple(ev.id for ev in lines)
        if key == self.shown:
            return
        old = self.shown
        self.shown, self.entries = key, lines
        self.border_subtitle = f"{len(lines)}" if lines else ""
        if old and key[: len(old)] == old:  # only new ones: append (keeps the user's scroll position)
            self._write(lines[len(old):])
        else:
            self._render_lines()

    def restyle(self) -> None:
        self._render_lines()

    def on_resize(self, event: Resize) -> None:
        known, width = self._size_known, self._wrapped_at
        super().on_resize(event)
        if known and event.size.width != width:
            self._render_lines()  # re-wrap at the new width

    def _write(self, lines: list[EventLine]) -> None:
        styles = self.styles_by_look()
        for ev in lines:
            row = Table.grid(padding=(0, 1), expand=True)
            row.add_column(no_wrap=True, style=styles["dim"])  # type: ignore[arg-type]
            row.add_column(ratio=1, overflow="fold")
            row.add_row(time.strftime("%H:%M", time.localtime(ev.t)), event_text(ev, styles))
            self.write(row, expand=True)

    def _render_lines(self) -> None:
        self._wrapped_at = self.size.width
        self.clear()
        if not self.entries:
            self.write(Text("No decisions yet: they appear here as the engine makes them (refused, kept, discarded, "
                            "confirmed, nothing left to try…).", self.styles_by_look()["dim"]))  # type: ignore[arg-type]
            return
        self._write(self.entries)
