"""Pending approvals, oldest first, with a grace period so a key pressed just before a prompt appears is ignored.

The engine (or anyone) adds approvals to the store; this queue shows them. A prompt that appeared, or slid under
the cursor because the one above was decided, is not "armed" until it has been on screen for `grace_s` (kon /
Mistral Vibe do the same): typing ahead can never approve something the user has not seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.widgets import DataTable

from nightlab.agent.records import Approval
from nightlab.agent.states import ApprovalKind
from nightlab.agent.views import Snapshot
from nightlab.tui.data import fmt_metric
from nightlab.tui.widgets.listkeys import ListKeys

KIND_LABEL = {ApprovalKind.HYPOTHESIS: "run?", ApprovalKind.LAUNCH: "launch?", ApprovalKind.PROMOTE: "promote?",
              ApprovalKind.BUDGET: "budget?", ApprovalKind.COMPUTE: "compute?"}


class ApprovalQueue(ListKeys, DataTable[Text]):
    BINDINGS = ListKeys.BINDINGS
    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {"approval--kind", "approval--dim"}

    def __init__(self, *, grace_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 id: str | None = None) -> None:
        super().__init__(cursor_type="row", show_header=False, id=id)
        self.grace_s = grace_s
        self.clock = clock
        self.approvals: list[Approval] = []
        self._first_seen: dict[int, float] = {}
        self._target: int | None = None
        self._target_since = 0.0
        self._keys: tuple[int, ...] = ()
        self._snapshot: Snapshot | None = None

    def on_resize(self) -> None:
        if self._snapshot is not None:
            self._keys = ()
            self.show(self._snapshot)

    def restyle(self, snapshot: Snapshot) -> None:
        self._keys = ()
        self.show(snapshot)

    def show(self, snapshot: Snapshot) -> None:
        now = self.clock()
        self.approvals = list(snapshot.approvals)
        for a in self.approvals:
            self._first_seen.setdefault(a.id, now)
        keys = tuple(a.id for a in self.approvals)
        self.border_subtitle = "" if keys else "nothing waiting"
        self._snapshot = snapshot
        if keys == self._keys or not self.size.width:
            return
        self._keys = keys
        cursor = self.cursor_row
        self.clear(columns=True)
        self.add_column("kind", width=9, key="kind")
        self.add_column("#", width=4, key="exp")
        width = max(10, self.size.width - 9 - 4 - 7)
        self.add_column("what", width=width, key="what")
        kind_style = self.get_component_rich_style("approval--kind", partial=True)
        for a in self.approvals:
            e = snapshot.experiments.get(a.experiment_id or -1)
            title = e.title if e is not None else str(a.payload.get("title") or a.payload.get("reason") or "")
            if a.kind == ApprovalKind.PROMOTE and e is not None and a.payload.get("metric") is not None:
                title = f"{title} ({snapshot.metric} {fmt_metric(float(a.payload['metric']))})"
            what = Text(title, no_wrap=True, overflow="ellipsis")
            what.truncate(width, overflow="ellipsis")
            self.add_row(Text(KIND_LABEL.get(a.kind, a.kind), kind_style),
                         Text(f"#{a.experiment_id}" if a.experiment_id else "", justify="right"), what,
                         key=str(a.id))
        if self.approvals:
            self.move_cursor(row=min(cursor, len(self.approvals) - 1), animate=False)
        self._retarget(now)

    def _retarget(self, now: float) -> None:
        """Note when a different approval came under the cursor without the user moving it."""
        cur = self.current()
        cid = cur.id if cur else None
        if cid != self._target:
            self._target = cid
            self._target_since = now

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # the screen listens for experiment selection, not ours

    def current(self) -> Approval | None:
        if not self.approvals:
            return None
        row = min(max(self.cursor_row, 0), len(self.approvals) - 1)
        return self.approvals[row]

    def armed(self, appr: Approval) -> bool:
        """True once `appr` has been on screen for the grace period, and, if a refresh slid it under the cursor,
        once it has been there for the grace period too. Where the user moved the cursor themselves, their
        choice counts at once."""
        now = self.clock()
        if now - self._first_seen.get(appr.id, now) < self.grace_s:
            return False
        return appr.id != self._target or now - self._target_since >= self.grace_s
