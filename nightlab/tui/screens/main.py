"""The main screen: experiment tree / ranked table, approval queue, details, charts, and the live log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input

from nightlab.agent.states import ApprovalKind, ApprovalState, EngineState, Mode, SessionState, Status
from nightlab.agent.views import RunRef, Snapshot
from nightlab.tui import braille, keymap
from nightlab.tui.data import elapsed, fmt_seconds
from nightlab.tui.messages import ReportsWorkerErrors
from nightlab.tui.narrow import fit_to_width
from nightlab.tui.screens.dialogs import ConfirmDialog, FeedbackDialog
from nightlab.tui.screens.review import ReviewMode
from nightlab.tui.widgets.approvals import ApprovalQueue
from nightlab.tui.widgets.chart import CurveChart, MetricChart
from nightlab.tui.widgets.details import DetailsPane
from nightlab.tui.widgets.events import EventsPane
from nightlab.tui.widgets.experiments import ExperimentTable
from nightlab.tui.widgets.logpane import LogTail
from nightlab.tui.widgets.statusbar import GpuLine, StatusBar

if TYPE_CHECKING:
    from nightlab.agent.records import Approval
    from nightlab.tui.app import NightlabApp

LIVE_CURVE_CHUNK = 400  # lines parsed per second at most for the live curve (~4 ms of GIL)


class MainScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS = keymap.bindings("main")

    class LiveCurve(Message):
        def __init__(self, exp_id: int, points: list[tuple[float, float]]) -> None:
            super().__init__()
            self.exp_id = exp_id
            self.points = points

    def __init__(self) -> None:
        super().__init__(id="main")
        self.snapshot: Snapshot | None = None
        self.selected: int | None = None
        self._curve_exp: int | None = None
        self._live_key: tuple[int | None, Path | None] = (None, None)
        self._live_points: list[tuple[float, float]] = []
        self._live_seen = 0
        self._run_pick: dict[int, int] = {}  # row -> the run (experiment id) the user chose with [ / ]
        self.shown_run: RunRef | None = None  # the run whose log the log pane shows

    @property
    def nl(self) -> NightlabApp:
        return cast("NightlabApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield GpuLine(id="gpus")
        with Horizontal(id="top"):
            with Vertical(id="left"):
                yield ExperimentTable(id="experiments")
                yield Input(placeholder="filter: #id, words of the title or status (enter keeps, esc clears)",
                            id="tree-filter")
                yield ApprovalQueue(grace_s=self.nl.grace_s, clock=self.nl.clock, id="approvals")
            with Vertical(id="right"):
                yield DetailsPane(id="details")
                with Horizontal(id="charts"):
                    yield MetricChart(id="metric-chart")
                    yield CurveChart(id="curve-chart")
        with Horizontal(id="bottom"):
            yield LogTail(id="log")
            yield EventsPane(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#experiments").border_title = "Experiments · tree"
        self.query_one("#approvals").border_title = "Approvals"
        self.query_one("#details").border_title = "Details"
        self.query_one("#metric-chart").border_title = "Metric · best"
        self.query_one("#curve-chart").border_title = "Curve"
        self.query_one("#log").border_title = "Log"
        self.query_one("#events").border_title = "Events"
        self.query_one("#tree-filter").display = False
        self.set_interval(1.0, self._tick)
        self.query_one(StatusBar).mode = self.nl.mode
        fit_to_width(self)
        self._catch_up()
        self.call_after_refresh(self._catch_up)  # and what the app took while the mount was still finishing

    def _catch_up(self) -> None:
        """Show what the app's pollers delivered before this screen could take it (the app hands data only to a
        mounted screen, and the pollers post only what changes: a GPU reading that came early is not sent again)."""
        if self.nl.snapshot is not None:
            self.show_snapshot(self.nl.snapshot)
        if self.nl.gpu_stats is not None:
            self.show_gpus(*self.nl.gpu_stats)

    def on_resize(self) -> None:
        fit_to_width(self)

    @property
    def track_running(self) -> bool:
        """Until a person picks a row the cursor follows the newest running job, else what waits for a decision. The
        table knows of a pick the moment it handles the key (or, at a snapshot, a move whose highlight still waits),
        before its message reaches this screen."""
        return not self.query_one(ExperimentTable).user_picked

    # -------------------------------------------------------------------------------- data
    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        bar = self.query_one(StatusBar)
        bar.mode = self.nl.mode
        bar.snapshot = snapshot
        self.query_one(GpuLine).snapshot = snapshot
        table = self.query_one(ExperimentTable)
        running = [i for i in snapshot.running_ids if snapshot.row(i) is not None]
        table.show(snapshot)
        if self.track_running:
            # until the user picks a row: show the newest running job, else what waits for a decision
            waiting = [a.experiment_id for a in snapshot.approvals
                       if a.kind == ApprovalKind.HYPOTHESIS and snapshot.row(a.experiment_id) is not None]
            if running and table.selected not in running:
                table.select(running[-1])
            elif not running and waiting and table.selected not in waiting:
                table.select(waiting[0])
        queue = self.query_one(ApprovalQueue)
        queue.show(snapshot)
        queue.border_title = f"Approvals ({len(snapshot.approvals)})" if snapshot.approvals else "Approvals"
        self.query_one(MetricChart).show(snapshot)
        self.query_one(EventsPane).show(snapshot.events)
        self._show_selected()
        self.refresh_bindings()

    def show_gpus(self, gpus: list[Any], elsewhere: dict[int, str]) -> None:
        line = self.query_one(GpuLine)
        line.elsewhere = dict(elsewhere)
        line.gpus = list(gpus)

    def restyle(self) -> None:
        """After a theme switch: re-render what has theme colours baked in."""
        self.query_one(ExperimentTable).restyle()
        self.query_one(EventsPane).restyle()
        if self.snapshot is not None:
            self.query_one(ApprovalQueue).restyle(self.snapshot)
            self._show_selected()

    def set_mode(self, mode: str) -> None:
        self.query_one(StatusBar).mode = mode

    def on_experiment_table_selected(self, message: ExperimentTable.Selected) -> None:
        message.stop()
        self.selected = message.exp_id
        self._show_selected()

    def _show_selected(self) -> None:
        s = self.snapshot
        if s is None:
            return
        self.selected = self.query_one(ExperimentTable).selected
        exp_id = self.selected
        self.query_one(DetailsPane).show(s, exp_id)
        self.query_one(MetricChart).mark(exp_id)
        e = s.experiments.get(exp_id) if exp_id is not None else None
        curve = self.query_one(CurveChart)
        log = self.query_one(LogTail)
        if e is None:
            curve.show_curve([], "")
            log.watch_file(None, "no experiment selected")
            log.border_title = "Log"
            return
        if e.status != Status.RUNNING or len(e.loss_curve) >= 2 or len(e.curve) >= 2:
            pts, label = ((e.loss_curve, "loss") if len(e.loss_curve) >= 2 else (e.curve, s.metric))
            curve.show_curve([(float(p[0]), float(p[1])) for p in pts], label)
            curve.border_title = f"Curve #{e.id} · {label}" if len(pts) >= 2 else f"Curve #{e.id}"
            self._curve_exp = e.id
        elif self._curve_exp != e.id:
            curve.show_curve([], "")
            curve.border_title = f"Curve #{e.id} · waiting"
            self._curve_exp = e.id
        run = self.current_run(e.id)
        self.shown_run = run
        if run is None:
            log.watch_file(None, self._not_run(e.id))
            log.border_title = f"Log #{e.id}"
        else:
            log.watch_file(Path(run.job.log_path), "waiting for output…")
            log.border_title = self._log_title(e.id, run)

    def _not_run(self, exp_id: int) -> str:
        """Why an experiment has no run to show, in the words the rest of the screen uses."""
        s = self.snapshot
        e = s.experiments.get(exp_id) if s is not None else None
        if s is None or e is None:
            return f"#{exp_id} has not run"
        row = s.row(e.id)
        if row is not None and row.refused:
            why = "it was refused by the engine"
        elif e.status == Status.REJECTED:
            why = "it was rejected"
        elif e.status == Status.PROPOSED:
            why = "it waits for approval" if any(a.experiment_id == e.id for a in s.approvals) else "it is proposed"
        elif e.status in (Status.APPROVED, Status.QUEUED):
            why = "it is queued"
        else:
            why = f"it is {e.status}"
        return f"#{e.id} has not run ({why})"

    def _log_title(self, row: int, run: RunRef) -> str:
        """Which run the log pane shows: its experiment, seed and state, and how to see the row's other runs."""
        runs = self.snapshot.runs.get(row, []) if self.snapshot else []
        which = f"Log #{row}" if run.exp_id == row else f"Log #{row} · re-run #{run.exp_id}"
        title = f"{which} · seed {run.seed}"
        if run.running:
            took = elapsed(run)
            title += f" · running {fmt_seconds(took)}" if took is not None else " · starting"
        if len(runs) > 1:
            title += f" · run {[r.exp_id for r in runs].index(run.exp_id) + 1}/{len(runs)} ([ ])"
        if self.query_one(LogTail).follow and run.running:
            title += " · following"
        return title

    def current_run(self, row: int) -> RunRef | None:
        """The run of `row` to show: the one the user chose with [ / ], else a running one (the live log), else
        the experiment's own run."""
        runs = self.snapshot.runs.get(row, []) if self.snapshot else []
        if not runs:
            return None
        picked = self._run_pick.get(row)
        chosen = next((r for r in runs if r.exp_id == picked), None)
        if chosen is None:
            running = [r for r in runs if r.running]
            chosen = running[-1] if running else next((r for r in runs if r.exp_id == row), runs[0])
        return chosen

    def _step_run(self, delta: int) -> None:
        s, row = self.snapshot, self.selected
        runs = s.runs.get(row, []) if s is not None and row is not None else []
        if row is None or len(runs) < 2:
            self.notify("This experiment has one run; seed re-runs appear here when the engine makes them.")
            return
        current = self.current_run(row)
        ids = [r.exp_id for r in runs]
        i = ids.index(current.exp_id) if current is not None else 0
        self._run_pick[row] = ids[(i + delta) % len(ids)]
        self._show_selected()

    def action_next_run(self) -> None:
        self._step_run(1)

    def action_prev_run(self) -> None:
        self._step_run(-1)

    def _tick(self) -> None:
        """Once a second: grow the live curve, and keep a running job's elapsed time current."""
        self._refresh_live_curve()
        run = self.shown_run
        if run is not None and run.running and self.selected is not None:
            self.query_one(LogTail).border_title = self._log_title(self.selected, run)
            if self.snapshot is not None:
                self.query_one(DetailsPane).show(self.snapshot, self.selected)

    # -------------------------------------------------------------------------------- live curve
    def _refresh_live_curve(self) -> None:
        """Grow the running job's curve from the lines that arrived since the last look, a bounded chunk at a
        time: parsing holds the GIL, so it must never be big enough to delay a key press."""
        s = self.snapshot
        if s is None or self.selected is None or self.selected not in s.running_ids:
            return
        pane = self.query_one(LogTail)
        key = (self.selected, pane.path)
        if key != self._live_key:
            self._live_key = key
            self._live_points = []
            self._live_seen = max(0, pane.received - len(pane.lines))
        new = pane.received - self._live_seen
        if new <= 0 or not pane.lines:
            return
        chunk = pane.lines[-min(new, len(pane.lines), LIVE_CURVE_CHUNK):]
        self._live_seen = pane.received
        self._parse_curve(self.selected, "\n".join(chunk))

    @work(thread=True, exclusive=True, group="curve", exit_on_error=False, name="live curve")
    def _parse_curve(self, exp_id: int, text: str) -> None:
        from nightlab.agent.views import loss_curve

        pts = loss_curve(text)
        self.post_message(self.LiveCurve(exp_id, [(float(a), float(b)) for a, b in pts]))

    def on_main_screen_live_curve(self, message: LiveCurve) -> None:
        if message.exp_id != self.selected or not message.points:
            return
        pts = message.points
        if self._live_points and pts[0][0] <= self._live_points[-1][0]:
            # a chunk whose steps restart (counted per chunk): continue after the last one
            offset = self._live_points[-1][0]
            pts = [(x + offset, y) for x, y in pts]
        self._live_points.extend(pts)
        if len(self._live_points) > 4000:
            self._live_points = braille.downsample(self._live_points, 2000)
        if len(self._live_points) >= 2:
            chart = self.query_one(CurveChart)
            chart.show_curve(self._live_points, "loss")
            chart.border_title = f"Curve #{message.exp_id} · loss (live)"
            self._curve_exp = message.exp_id

    # -------------------------------------------------------------------------------- actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        s = self.snapshot
        if action in ("approve", "reject", "edit_hypothesis", "edit_patch"):
            return True if s is not None and s.approvals else None
        if action == "start_engine":
            return not (s is not None and s.engine == EngineState.AWAKE)
        if action == "stop_job":
            return True if s is not None and s.open_jobs else None
        return True

    def _armed_request(self) -> Approval | None:
        """The approval a key may decide now: the queue's current one, once its grace period is over."""
        queue = self.query_one(ApprovalQueue)
        appr = queue.current()
        if appr is None:
            self.notify("Nothing is waiting for approval.")
            return None
        if not queue.armed(appr):
            self.notify("That request just appeared: read it, then press again.", severity="warning")
            return None
        return appr

    def action_approve(self) -> None:
        appr = self._armed_request()
        if appr is None:
            return
        if appr.kind == ApprovalKind.PROMOTE and appr.experiment_id is not None:
            self.nl.open_review(appr.experiment_id, ReviewMode.PROMOTE)
            return
        self.nl.decide(appr, ApprovalState.APPROVED)

    def action_reject(self) -> None:
        appr = self._armed_request()
        if appr is None:
            return
        e = self.snapshot.experiments.get(appr.experiment_id or -1) if self.snapshot else None
        title = f"Reject {appr.kind} #{appr.experiment_id}: {e.title if e else ''}".rstrip(": ")

        def done(feedback: str | None) -> None:
            if feedback is not None:
                self.nl.decide(appr, ApprovalState.REJECTED, feedback or None)

        self.app.push_screen(FeedbackDialog(title), done)

    def _editable_target(self) -> int | None:
        """The proposal to edit: the selected experiment if it waits for approval, else the queue's current one."""
        s = self.snapshot
        if s is None:
            return None
        pending = {a.experiment_id for a in s.approvals if a.kind == ApprovalKind.HYPOTHESIS}
        if self.selected in pending:
            return self.selected
        appr = self.query_one(ApprovalQueue).current()
        if appr is not None and appr.kind == ApprovalKind.HYPOTHESIS:
            return appr.experiment_id
        return None

    def action_edit_hypothesis(self) -> None:
        target = self._editable_target()
        if target is None:
            self.notify("Only a proposal waiting for approval can be edited.", severity="warning")
            return
        self.nl.edit_hypothesis(target)

    def action_edit_patch(self) -> None:
        target = self._editable_target()
        if target is None:
            self.notify("Only a proposal waiting for approval can be edited.", severity="warning")
            return
        self.nl.edit_patch(target)

    def action_show_diff(self) -> None:
        if self.selected is None:
            return
        s = self.snapshot
        pending = s is not None and any(a.experiment_id == self.selected and a.kind == ApprovalKind.HYPOTHESIS
                                        for a in s.approvals)
        self.nl.open_review(self.selected, ReviewMode.HYPOTHESIS if pending else ReviewMode.VIEW)

    def action_show_plan(self) -> None:
        from nightlab.tui.screens.plan import PlanScreen

        self.app.push_screen(PlanScreen())

    def action_promote(self) -> None:
        if self.selected is None:
            self.notify("Select an experiment to review first.")
            return
        self.nl.open_review(self.selected, ReviewMode.PROMOTE)

    def action_open_log(self) -> None:
        s = self.snapshot
        if s is None or self.selected is None:
            return
        run = self.current_run(self.selected)
        if run is None:
            self.notify(self._not_run(self.selected) + ".")
            return
        which = f"#{self.selected}" if run.exp_id == self.selected else f"#{self.selected} re-run #{run.exp_id}"
        self.nl.open_log(Path(run.job.log_path), f"{which} (seed {run.seed}) {s.experiments[self.selected].title}")

    def action_follow_log(self) -> None:
        log = self.query_one(LogTail)
        log.set_follow(not log.follow)
        self.notify("Following the log." if log.follow else "Stopped following the log.")
        self._show_selected()

    def action_wrap_log(self) -> None:
        log = self.query_one(LogTail)
        log.wrap = not log.wrap
        self.notify("Long log lines wrap." if log.wrap else "Long log lines run on (scroll sideways).")

    def action_toggle_view(self) -> None:
        table = self.query_one(ExperimentTable)
        table.set_view("ranked" if table.view == "tree" else "tree")
        self._title_experiments()

    def action_stop_job(self) -> None:
        s = self.snapshot
        if s is None or not s.open_jobs:
            self.notify("No job is running.")
            return
        target = self.selected if self.selected in s.running_ids else None
        if target is None and len(s.running_ids) == 1:
            target = s.running_ids[0]
        if target is None:
            self.notify("Select the running experiment whose job should stop.", severity="warning")
            return
        self.nl.confirm_stop(target)

    def action_jump_running(self) -> None:
        s = self.snapshot
        if s is None or not s.running_ids:
            self.notify("No job is running.")
            return
        table = self.query_one(ExperimentTable)
        table.user_picked = False  # follow it again
        table.select(s.running_ids[-1])

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_start_engine(self) -> None:
        """Resume an unfinished session at once; a new one spends budget, so it is asked first."""
        s, nl = self.snapshot, self.nl
        if s is None or nl.cfg is None or (s.session is not None and s.session.state != SessionState.DONE):
            nl.start_engine()
            return
        runs = nl.budget or nl.cfg.search.budget
        before = "The last session is done. " if s.session is not None else ""
        detail = (f"{before}A new session may start up to {runs} training runs (search.budget) with the "
                  f"{nl.cfg.search.policy} policy; in {nl.mode.upper()} mode "
                  + ("each one waits for your approval." if nl.mode == Mode.STEP else "they run without asking."))

        def answer(yes: bool | None) -> None:
            if yes:
                nl.start_engine()

        self.app.push_screen(ConfirmDialog(f"Start a new session of up to {runs} runs?", detail), answer)

    def action_write_report(self) -> None:
        self.nl.write_report()

    def action_leave_zoom(self) -> None:
        """Esc only ever un-zooms or clears the filter: people press it by habit (k9s, lazygit), so it must never
        change the mode."""
        box = self.query_one("#tree-filter", Input)
        if box.has_focus or (box.display and self.maximized is None):
            box.value = ""
            box.display = False
            self.query_one(ExperimentTable).focus()
            return
        if self.maximized is not None:
            self.minimize()

    def action_filter_tree(self) -> None:
        box = self.query_one("#tree-filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "tree-filter":
            return
        table = self.query_one(ExperimentTable)
        table.set_filter(event.value)
        self._title_experiments()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "tree-filter":
            return
        event.stop()
        if not event.value.strip():
            event.input.display = False
        self.query_one(ExperimentTable).focus()

    def _title_experiments(self) -> None:
        table = self.query_one(ExperimentTable)
        title = ("Experiments · ranked by " + (self.snapshot.metric if self.snapshot else "metric")
                 if table.view == "ranked" else "Experiments · tree")
        if table.filter_text and self.snapshot is not None:
            shown = len(table.matching(self.snapshot.rows))
            title += f" · /{table.filter_text} ({shown} of {len(self.snapshot.rows)})"
        table.border_title = title
