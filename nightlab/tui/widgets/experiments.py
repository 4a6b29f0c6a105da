"""The experiment tree (parent → child, drawn with guides in a table so columns line up) and the ranked view."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

from nightlab.agent.goal import Goal
from nightlab.agent.states import UNCONFIRMED_LABEL, Kind, Status
from nightlab.agent.views import Row, Snapshot
from nightlab.tui.data import elapsed, fmt_delta, fmt_metric, fmt_seconds, live_run
from nightlab.tui.widgets.listkeys import ListKeys

STATUS_ICON = {
    Status.PROPOSED: "?", Status.APPROVED: "…", Status.QUEUED: "…", Status.RUNNING: "▶", Status.SUCCEEDED: "✓",
    Status.KEPT: "✓", Status.UNCONFIRMED: "✓", Status.PROMOTED: "⇪", Status.DISCARDED: "·", Status.FAILED: "✗",
    Status.TIMED_OUT: "✗", Status.CANCELLED: "✗", Status.LOST: "✗", Status.STOPPED_EARLY: "↓", Status.REJECTED: "⊘",
    Status.NO_EFFECT: "=",
}
STATUS_CLASS = {
    Status.PROPOSED: "proposed", Status.APPROVED: "queued", Status.QUEUED: "queued", Status.RUNNING: "running",
    Status.SUCCEEDED: "kept", Status.KEPT: "kept", Status.UNCONFIRMED: "kept", Status.PROMOTED: "kept",
    Status.DISCARDED: "dim", Status.FAILED: "failed", Status.TIMED_OUT: "failed", Status.CANCELLED: "failed",
    Status.LOST: "failed", Status.REJECTED: "dim", Status.STOPPED_EARLY: "dim",
    Status.NO_EFFECT: "dim",
}
MAX_GUIDE_DEPTH = 6


def status_label(r: Row, best: bool) -> str:
    """Icon and status; `kept?` (as in the console table) for a best kept on one seed so far."""
    icon = "★" if best else STATUS_ICON.get(r.status, " ")
    if r.refused:  # the engine's refusal (a repeat, an invalid edit), not a person's rejection
        return f"{icon} refused"
    return f"{icon} {UNCONFIRMED_LABEL if r.unconfirmed else r.status}"


def tree_order(rows: list[Row]) -> list[tuple[Row, str]]:
    """Rows depth-first from each root, with the guide drawn before the title (deep chains are elided)."""
    ids = {r.id for r in rows}
    children: dict[int | None, list[Row]] = {}
    for r in rows:
        children.setdefault(r.parent if r.parent in ids else None, []).append(r)
    out: list[tuple[Row, str]] = []
    stack: list[tuple[Row, str, bool, bool]] = [(r, "", True, True) for r in reversed(children.get(None, []))]
    while stack:
        row, prefix, last, root = stack.pop()
        guide = "" if root else prefix + ("└─ " if last else "├─ ")
        if len(guide) > 3 * MAX_GUIDE_DEPTH:
            guide = "…" + guide[-(3 * MAX_GUIDE_DEPTH - 1):]
        out.append((row, guide))
        kids = children.get(row.id, [])
        child_prefix = "" if root else prefix + ("   " if last else "│  ")
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], child_prefix, i == len(kids) - 1, False))
    return out


def ranked_rows(rows: list[Row], goal: str) -> list[Row]:
    g = Goal(goal)
    return sorted(rows, key=lambda r: (*g.rank_key(r.metric), r.id))


class ExperimentTable(ListKeys, DataTable[Text]):
    """One row per experiment (seed re-runs are folded into their experiment's metric)."""

    BINDINGS = ListKeys.BINDINGS

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "exp--kept", "exp--running", "exp--failed", "exp--dim", "exp--proposed", "exp--queued", "exp--guide",
        "exp--better", "exp--worse", "exp--best",
    }

    class Selected(Message):
        """The highlighted experiment changed (whether a person moved it is the table's `user_picked`)."""

        def __init__(self, exp_id: int | None) -> None:
            super().__init__()
            self.exp_id = exp_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id=id)
        self.view = "tree"
        self.selected: int | None = None
        # a person moved the cursor: set where the table learns it, before its message reaches the screen (a snapshot
        # handled in between must not take the selection for a wandering one and follow something else)
        self.user_picked = False
        self._expected: int | None = None
        self._snapshot: Snapshot | None = None
        self._signature: tuple[object, ...] = ()
        self.filter_text = ""
        self._cells: dict[int, tuple[Text, ...]] = {}

    # -------------------------------------------------------------------------------- data
    def set_filter(self, text: str) -> None:
        """Show only experiments whose `#id title` contains `text` (case-insensitive); "" shows every one."""
        self.filter_text = text.strip().lower()
        self._signature = ()
        if self._snapshot is not None:
            self.show(self._snapshot)

    def matching(self, rows: list[Row]) -> list[Row]:
        if not self.filter_text:
            return rows
        return [r for r in rows if self.filter_text in f"#{r.id} {r.title} {r.status}".lower()]

    def set_view(self, view: str) -> None:
        self.view = view
        self._signature = ()
        if self._snapshot is not None:
            self.show(self._snapshot)

    def restyle(self) -> None:
        """Re-render cells after a theme change (their styles are baked into the text)."""
        self._signature = ()
        if self._snapshot is not None:
            self.show(self._snapshot)

    def _title_width(self, fixed: int, ncols: int) -> int:
        # the content width less one column for a scrollbar, so the layout does not depend on the row count
        return max(12, self.size.width - fixed - 2 * ncols - 1)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"exp--{name}", partial=True)

    def _status(self, r: Row, best: bool) -> Text:
        return Text(status_label(r, best), self._style("best" if best else STATUS_CLASS.get(r.status, "dim")))

    def _delta(self, v: float | None, goal: str) -> Text:
        if v is None:
            return Text("")
        better = Goal(goal).better_than(v, 0.0)
        return Text(fmt_delta(v), self._style("better" if better else "worse" if v else "dim"), justify="right")

    def _metric(self, r: Row) -> Text:
        t = Text(fmt_metric(r.metric), justify="right")
        if r.runs > 1:
            t.append(f"×{r.runs}", self._style("dim"))
        return t

    def show(self, snapshot: Snapshot) -> None:
        """Show a snapshot, rebuilding only when rows or columns changed (else cells are updated in place)."""
        self._snapshot = snapshot
        if not self.size.width:
            return  # not laid out yet: on_resize shows it (column widths depend on the width)
        metric = snapshot.metric
        if self.view == "tree":
            cols = [("hypothesis", None), ("status", 11), (metric, 8), ("vs base", 7), ("vs parent", 9)]
            fixed = 11 + 8 + 7 + 9
            tw = self._title_width(fixed, len(cols))
            for drop in (9, 7):  # keep the title readable: drop the parent column, then the baseline one
                if self._title_width(fixed, len(cols)) >= 16 + (12 if drop == 7 else 0) or len(cols) <= 3:
                    break
                cols, fixed = cols[:-1], fixed - drop
            tw = self._title_width(fixed, len(cols))
            ordered = tree_order(self.matching(snapshot.rows))
            rows: list[tuple[int, tuple[Text, ...]]] = []
            for r, guide in ordered:
                title = Text(no_wrap=True, overflow="ellipsis")
                title.append(guide, self._style("guide"))
                title.append(f"#{r.id} ", self._style("dim"))
                title.append(r.title)
                title.truncate(tw, overflow="ellipsis")
                cells: tuple[Text, ...] = (title, self._status(r, r.id == snapshot.best_id), self._metric(r),
                         self._delta(r.delta_base if r.kind != Kind.BASELINE else None, snapshot.goal),
                         self._delta(r.delta_parent, snapshot.goal))
                rows.append((r.id, cells[: len(cols)]))
        else:
            cols = [("rank", 4), ("hypothesis", None), ("status", 11), (metric, 8), ("vs base", 7), ("time", 7)]
            fixed = 4 + 11 + 8 + 7 + 7
            tw = self._title_width(fixed, len(cols))
            rows = []
            for i, r in enumerate(ranked_rows(self.matching(snapshot.rows), snapshot.goal), start=1):
                title = Text(f"#{r.id} ", self._style("dim"), no_wrap=True)
                title.append(r.title)
                title.truncate(tw, overflow="ellipsis")
                rank = Text(str(i) if r.metric is not None else "", justify="right")
                rows.append((r.id, (rank, title, self._status(r, r.id == snapshot.best_id), self._metric(r),
                                    self._delta(r.delta_base if r.kind != Kind.BASELINE else None, snapshot.goal),
                                    Text(self._time(snapshot, r), justify="right"))))
        signature = (self.view, tw, metric, tuple(k for k, _ in rows))
        if signature != self._signature:
            self._rebuild(cols, tw, rows)
            self._signature = signature
        else:
            for key, cells in rows:
                if self._cells.get(key) != cells:
                    for ci, cell in enumerate(cells):
                        self.update_cell_at(Coordinate(self.get_row_index(str(key)), ci), cell)
                    self._cells[key] = cells
        if self.selected is None and rows:
            self.select(self._default_selection(snapshot, [k for k, _ in rows]))
            return
        moved = self._pending_move()
        if moved is not None:  # the row under the cursor is the selection: a highlight lost to a rebuild (its event
            # judged stale) would otherwise leave the details on another row until the next key
            self.selected = moved
            self.user_picked |= moved != self._expected
            self.post_message(self.Selected(moved))

    @staticmethod
    def _time(snapshot: Snapshot, r: Row) -> str:
        """A finished run's time; a running one's time so far (it read "—" until the run ended)."""
        live = live_run(snapshot, r.id)
        took = elapsed(live) if live is not None else None
        return fmt_seconds(took) if took is not None else fmt_seconds(r.seconds)

    def _default_selection(self, snapshot: Snapshot, keys: list[int]) -> int:
        """What to look at first: a running job, else what waits for a decision, else the newest experiment."""
        running = [i for i in snapshot.running_ids if i in keys]
        if running:
            return running[-1]
        waiting = [a.experiment_id for a in snapshot.approvals if a.experiment_id in keys]
        return waiting[0] if waiting and waiting[0] is not None else max(keys)

    def _rebuild(self, cols: list[tuple[str, int | None]], tw: int, rows: list[tuple[int, tuple[Text, ...]]]) -> None:
        keep = self.selected
        pending = self._pending_move()
        scroll_y = self.scroll_y
        self.clear(columns=True)
        for label, width in cols:
            self.add_column(label, width=width if width is not None else tw, key=label)
        for key, cells in rows:
            self.add_row(*cells, key=str(key))
        self._cells = dict(rows)
        # a cursor the person moved whose highlight has not been handled yet stays on their row; otherwise it goes
        # back to the selection, and the highlight that follows is ours, not theirs
        target = pending if pending is not None and pending in self._cells else None
        if target is None and keep is not None and keep in self._cells:
            target = self._expected = keep
        if target is not None:
            self.move_cursor(row=self.get_row_index(str(target)), animate=False, scroll=False)
            self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def _pending_move(self) -> int | None:
        """The row the cursor is on where that is not the selection yet: a move whose highlight waits in the queue
        (a rebuild restoring the selection would undo it — seen on a slow machine, a snapshot landing between a key
        and its highlight). None when the cursor is on the selection or on no row."""
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        if key is None or key.value is None or not key.value.isdigit():
            return None
        at = int(key.value)
        return at if at != self.selected else None

    def select(self, exp_id: int | None) -> None:
        """Move the cursor from code (not the user): the app is told, but not as a user choice."""
        if exp_id is None or exp_id not in self._cells:
            return
        if self.selected != exp_id:
            self.selected = exp_id
            self.post_message(self.Selected(exp_id))
        self._expected = exp_id
        self.move_cursor(row=self.get_row_index(str(exp_id)), animate=False)

    def on_resize(self) -> None:
        if self._snapshot is not None:
            self.show(self._snapshot)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key: RowKey = event.row_key
        if key is None or key.value is None:
            return
        try:
            current = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:  # the table is empty or being rebuilt
            return
        if current != key:
            return  # a stale event from a rebuild: the cursor has moved on since
        exp_id = int(key.value)
        expected, self._expected = self._expected, None
        if exp_id == self.selected:
            return
        self.selected = exp_id
        self.user_picked |= exp_id != expected
        self.post_message(self.Selected(exp_id))
