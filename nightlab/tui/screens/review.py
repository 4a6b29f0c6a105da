"""Diff review: the file list, the diff unified or side by side, and the decision.

Three uses of one screen: `promote` (the whole change against the user's branch; accept commits it there),
`hypothesis` (a proposal's patch against its parent; accept approves the run) and `view` (read only).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from nightlab.agent.states import WINNERS, ApprovalKind, ApprovalState, Status
from nightlab.errors import NightlabError
from nightlab.tui import keymap
from nightlab.tui.data import fmt_delta, fmt_metric
from nightlab.tui.diffparse import FileDiff, parse_unified
from nightlab.tui.messages import ReportsWorkerErrors
from nightlab.tui.narrow import fit_to_width
from nightlab.tui.screens.dialogs import FeedbackDialog
from nightlab.tui.widgets.diffview import DiffView
from nightlab.tui.widgets.listkeys import ListOptions

if TYPE_CHECKING:
    from nightlab.tui.app import NightlabApp

# not run or not judged yet: no verdict to warn about
UNSETTLED = frozenset({Status.PROPOSED, Status.APPROVED, Status.QUEUED, Status.RUNNING, Status.SUCCEEDED})


class ReviewMode(StrEnum):
    PROMOTE = "promote"  # the whole change against the user's branch; accept commits it there
    HYPOTHESIS = "hypothesis"  # a proposal's patch against its parent; accept approves the run
    VIEW = "view"  # read only


class ReviewScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS = keymap.bindings("review")

    class Loaded(Message):
        def __init__(self, header: str, diff: str, problem: str = "") -> None:
            super().__init__()
            self.header = header
            self.diff = diff
            self.problem = problem

    def __init__(self, exp_id: int, mode: ReviewMode) -> None:
        super().__init__(id="review")
        self.exp_id = exp_id
        self.mode = mode
        self.files: list[FileDiff] = []
        self.ready = False
        self.problem = ""
        self.busy = False

    @property
    def nl(self) -> NightlabApp:
        return cast("NightlabApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("loading the diff…", id="review-header", markup=False)
        with Horizontal(id="review-body"):
            yield ListOptions(id="review-files")
            yield DiffView(id="review-diff")
        yield Footer()

    def on_resize(self) -> None:
        # below ~100 columns the file list would leave the diff too little room: [ ] still step through files
        fit_to_width(self)

    def on_mount(self) -> None:
        self.on_resize()
        self.query_one("#review-files").border_title = "Files"
        diff = self.query_one(DiffView)
        diff.border_title = "Diff · unified"
        diff.set_syntax_theme(self.nl.syntax_theme)
        self.opened_at = self.nl.clock()
        self._load()

    @work(thread=True, exit_on_error=False, name="load diff")
    def _load(self) -> None:
        desk = self.nl.desk()
        e = desk.experiment(self.exp_id)
        if self.mode == ReviewMode.PROMOTE:
            try:
                pv = desk.preview_promote(e.id)
            except NightlabError as err:
                self.post_message(self.Loaded(f"Cannot promote #{e.id}: {err}" + self._verdict(), e.patch or "",
                                              problem=str(err)))
                return
            header = f"Promote #{e.id} onto {pv.branch}: {pv.stat} — {e.title}"
            self.post_message(self.Loaded(header + self._verdict(), pv.command_text() + pv.diff))
            return
        verb = "Proposal" if self.mode == ReviewMode.HYPOTHESIS else "Change"
        parent = f" against #{e.parent_id}" if e.parent_id else ""
        self.post_message(self.Loaded(f"{verb} #{e.id}{parent} — {e.title}" + self._verdict(), e.patch or ""))

    def _verdict(self) -> str:
        """A second header line: what the change measured against the baseline and, when it is not a result that
        stands (discarded, failed, refused), that it is not, and which experiment is the best."""
        snap = self.nl.snapshot
        row = snap.row(self.exp_id) if snap is not None else None
        if snap is None or row is None:
            return ""
        parts = []
        if row.metric is not None:
            runs = f" over {row.runs} runs" if row.runs > 1 else ""
            delta = f" ({fmt_delta(row.delta_base)} vs baseline)" if row.delta_base is not None else ""
            parts.append(f"{snap.metric} {fmt_metric(row.metric)}{runs}{delta}")
        best = snap.row(snap.best_id)
        if row.status not in WINNERS and row.status not in UNSETTLED:  # a proposal was not "proposed" as a verdict
            status = "refused by the engine" if row.refused else row.status
            parts.append(f"⚠ it was {status}" + (f"; the best is #{best.id} ({snap.metric} {fmt_metric(best.metric)})"
                                                  if best is not None and best.id != row.id else ""))
        elif best is not None and best.id == row.id:
            parts.append("★ the best so far")
        return ("\n" + " · ".join(parts)) if parts else ""

    def on_review_screen_loaded(self, message: Loaded) -> None:
        self.problem = message.problem
        self.ready = not message.problem
        self.query_one("#review-header", Static).update(message.header)
        self.set_class(bool(message.problem), "-problem")
        self.files = parse_unified(message.diff)
        files = self.query_one(OptionList)
        files.clear_options()
        files.add_options([Option(f"{f.label}  +{f.added} −{f.removed}", id=str(i)) for i, f in enumerate(self.files)])
        if not self.files:
            files.add_option(Option("(no changes)", disabled=True))
        self.query_one(DiffView).set_diff(self.files)
        self.query_one(DiffView).focus()
        self.refresh_bindings()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None and event.option_list.has_focus:
            self.query_one(DiffView).scroll_to_file(int(event.option.id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.query_one(DiffView).scroll_to_file(int(event.option.id))

    # -------------------------------------------------------------------------------- actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("accept", "reject"):
            if self.mode == ReviewMode.VIEW:
                return False
            # a problem (a dirty file in the way): the key still answers, saying what to fix
            return True if self.ready or self.problem or action == "reject" else None
        return True

    def _armed(self) -> bool:
        if self.nl.clock() - getattr(self, "opened_at", 0.0) < self.nl.grace_s:
            self.notify("The diff just opened: read it, then press again.", severity="warning")
            return False
        return True

    def action_accept(self) -> None:
        if not self.ready or self.busy or not self._armed():
            if self.problem:
                self.notify(self.problem, severity="error")
            return
        self.busy = True
        if self.mode == ReviewMode.PROMOTE:
            self.nl.promote(self.exp_id, on_done=self._after)
        else:
            appr = self.nl.pending_for(self.exp_id, ApprovalKind.HYPOTHESIS)
            if appr is not None:
                self.nl.decide(appr, ApprovalState.APPROVED)
            self.dismiss(None)

    def _after(self, ok: bool) -> None:
        self.busy = False
        if ok:
            self.dismiss(None)

    def action_reject(self) -> None:
        if self.busy or not self._armed():
            return
        kind = ApprovalKind.PROMOTE if self.mode == ReviewMode.PROMOTE else ApprovalKind.HYPOTHESIS
        appr = self.nl.pending_for(self.exp_id, kind)
        if appr is None:
            self.notify("Not promoted." if self.mode == ReviewMode.PROMOTE else "Nothing to reject.")
            self.dismiss(None)
            return

        def done(feedback: str | None) -> None:
            if feedback is None:
                return
            self.nl.decide(appr, ApprovalState.REJECTED, feedback or None)
            self.dismiss(None)

        self.app.push_screen(FeedbackDialog(f"Reject {kind} #{self.exp_id}"), done)

    def action_toggle_split(self) -> None:
        diff = self.query_one(DiffView)
        top = diff.file_at_top()
        diff.set_split(not diff.split)
        diff.border_title = "Diff · side by side" if diff.split else "Diff · unified"
        diff.scroll_to_file(top)

    def _step_file(self, delta: int) -> None:
        if not self.files:
            return
        diff = self.query_one(DiffView)
        i = max(0, min(len(self.files) - 1, diff.file_at_top() + delta))
        diff.scroll_to_file(i)
        self.query_one(OptionList).highlighted = i

    def action_next_file(self) -> None:
        self._step_file(1)

    def action_prev_file(self) -> None:
        self._step_file(-1)

    def action_close(self) -> None:
        self.dismiss(None)
