"""The nightlab TUI: it asks the front desk for everything — what to show (agent/views.py) and every action
(agent/actions.py); it never opens the store, a lock or git itself.

The App owns the background work — the snapshot poller, the engine loop, the desk's actions — each in a thread
worker with its own desk (`desk()`) that talks back by posting messages; widgets only ever render what they are
given. Failures of any worker land in one handler that shows an error dialog. Closing the app stops the engine loop
after its current step, never the training jobs: they run detached and wake nightlab when they end.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from nightlab.agent import views
from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_metric
from nightlab.agent.states import OPEN_JOB_STATES, ApprovalState, EngineState, EventKind, Mode, SessionState
from nightlab.agent.views import Snapshot
from nightlab.errors import NightlabError
from nightlab.tui import keymap
from nightlab.tui.messages import (
    ActionDone,
    EngineEvent,
    EngineStopped,
    GpuStatsReady,
    InitDone,
    InitProgress,
    NeedsInit,
    ProjectOpened,
    ReportsWorkerErrors,
    SnapshotReady,
)
from nightlab.tui.screens.dialogs import ConfirmDialog, ErrorDialog
from nightlab.tui.screens.help import HelpScreen
from nightlab.tui.screens.logviewer import LogViewerScreen
from nightlab.tui.screens.main import MainScreen
from nightlab.tui.screens.review import ReviewMode, ReviewScreen
from nightlab.tui.screens.setup import InitScreen
from nightlab.tui.themes import DEFAULT_THEME, ThemeInfo, available_themes, load_theme
from nightlab.tui.userconfig import UserConfig, display_path, load_user_config, save_theme

if TYPE_CHECKING:
    from nightlab.agent.actions import FrontDesk

THEME_SOURCE = "nightlab-theme:"
WHO = "tui"
MODES = frozenset(Mode)
NOTIFY_EVENTS = {EventKind.KEPT, EventKind.FAILED, EventKind.DONE, EventKind.EXHAUSTED, EventKind.POLICY_ERROR,
                 EventKind.LOST, EventKind.PROMOTED, EventKind.ABANDON, EventKind.REPORT, EventKind.REPORT_ERROR}

LAYOUT_CSS = """
#top { height: 1fr; }
#left { width: 58%; }
#right { width: 42%; }
#experiments { height: 1fr; }
#approvals { height: auto; min-height: 3; max-height: 10; overflow-y: auto; }
#details { height: auto; min-height: 30%; max-height: 60%; }
#charts { height: 1fr; min-height: 8; }
#bottom { height: 33%; min-height: 7; }
#log { width: 1fr; }
#events { width: 40%; }
MainScreen.-narrow #left { width: 55%; }
MainScreen.-narrow #right { width: 45%; }
MainScreen.-narrow #curve-chart { display: none; }
MainScreen.-narrow #charts { min-height: 6; }
MainScreen.-narrow #approvals { max-height: 6; }
MainScreen.-narrow #events { width: 45%; }
ReviewScreen.-narrow #review-files { display: none; }
MainScreen #approvals.-maximized, MainScreen #details.-maximized, MainScreen #events.-maximized {
    width: 1fr; height: 1fr; min-height: 0; max-height: 100%;
}
#review-header, #logviewer-header { height: auto; max-height: 3; padding: 0 1; }
#review-body { height: 1fr; }
#review-files { width: 20%; max-width: 40; min-width: 16; height: 1fr; }
#log-search { dock: bottom; }
ModalScreen { align: center middle; }
.dialog { width: 72; max-width: 96%; height: auto; max-height: 90%; padding: 1 2; }
.help-dialog { width: 96; max-width: 96%; height: 90%; }
.setup-dialog { margin: 2 4; width: 1fr; }
.dialog-title { text-style: bold; margin-bottom: 1; width: 1fr; }
.dialog-detail { margin-bottom: 1; width: 1fr; }
.dialog-traceback { height: auto; max-height: 12; overflow-y: auto; margin-bottom: 1; }
.dialog-keys { width: 1fr; }
"""

class NightlabApp(ReportsWorkerErrors, App[int]):
    TITLE = "nightlab"
    CSS = LAYOUT_CSS
    BINDINGS = keymap.bindings("app")

    mode: reactive[str] = reactive(Mode.STEP, init=False)

    def __init__(self, root: Path, *, mode: str | None = None, budget: int | None = None, start: str = "auto",
                 grace_s: float = 0.5, poll_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 user_config: UserConfig | None = None, gpus: Callable[[], list[Any]] | None = None,
                 gpu_poll_s: float = 2.0, unsafe_no_sandbox: bool = False) -> None:
        super().__init__()
        self.unsafe_no_sandbox = unsafe_no_sandbox  # `nightlab demo --unsafe-no-sandbox`: jobs with layer 0 only
        self.root = Path(root).resolve()
        self.next_root: Path | None = None  # a project chosen in the overview, opened when this app exits
        self.requested_mode = mode
        self.budget = budget
        self.start_policy = start  # auto: resume an unfinished session | now: start at once | never
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.clock = clock
        self.read_gpus = gpus  # None: NVML, through the desk's views
        self.gpu_poll_s = gpu_poll_s
        self.user = user_config if user_config is not None else load_user_config()
        self.cfg: Any = None
        self.snapshot: Snapshot | None = None
        self.gpu_stats: tuple[list[Any], dict[int, str]] | None = None  # the GPU poller's last (GPUs, held elsewhere)
        self.main: MainScreen | None = None
        self.engine: Any = None
        self.theme_info: ThemeInfo = self._pick_theme(self.user.theme)
        self._engine_worker: Worker[None] | None = None
        self._waker: Any = None
        self._local = threading.local()  # each worker thread's own desk (its own store connection)
        self._mode_pending: str | None = None  # a mode we wrote that the store may not show yet
        self._started = False
        self._say_done = False
        if mode in MODES:
            self.set_reactive(NightlabApp.mode, mode)

    # ---------------------------------------------------------------------------------------------- setup
    def get_default_screen(self) -> Screen[Any]:
        self.main = MainScreen()
        return self.main

    def on_mount(self) -> None:
        if self.user.keys:
            self.set_keymap(self.user.keys)
        for problem in self.user.problems:
            self.notify(problem, severity="error", timeout=15)
        self.apply_theme(self.theme_info.name)
        self._open_project()

    def on_unmount(self) -> None:
        gc.unfreeze()  # what this app froze (see on_snapshot_ready) is collectable again once it is gone

    def _pick_theme(self, name: str | None) -> ThemeInfo:
        try:
            return load_theme(name or DEFAULT_THEME)
        except KeyError:
            return load_theme(DEFAULT_THEME)

    @work(thread=True, exit_on_error=False, name="open project")
    def _open_project(self) -> None:
        cfg = self.desk().open_project()
        if cfg is None:
            where = display_path(self.root)
            self.post_message(NeedsInit(f"{where}: no nightlab.toml (or [tool.nightlab] in pyproject.toml)."))
            return
        self.post_message(ProjectOpened(cfg))

    def on_project_opened(self, message: ProjectOpened) -> None:
        self.cfg = message.cfg
        self._poll()
        self._poll_gpus()

    @work(thread=True, exclusive=True, group="gpus", exit_on_error=False, name="GPU poller")
    def _poll_gpus(self) -> None:
        """GPU utilisation and memory every few seconds, off the UI thread; posted only when they change. Where the
        first read finds no GPU (no NVIDIA driver, NVML failing) the poller ends: the status bar shows no GPU line."""
        read = self.read_gpus or views.read_gpus
        worker = get_current_worker()
        last: tuple[list[Any], dict[int, str]] | None = None
        while not worker.is_cancelled:
            gpus = read()
            if not gpus and last is None:
                return
            now = (gpus, views.gpus_leased_elsewhere(self.root) if gpus else {})
            if now != last:
                self.post_message(GpuStatsReady(*now))
                last = now
            deadline = time.monotonic() + self.gpu_poll_s
            while not worker.is_cancelled and time.monotonic() < deadline:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    @property
    def _showing(self) -> MainScreen | None:
        """The main screen while it can show data: None before it is mounted (it shows the last snapshot and GPU
        stats when it mounts), and once the app shuts down — a worker's last message can be handled after the
        screens were taken down (measured: a snapshot the store poller posted as a test's app exited, under load,
        failed on the main screen's missing status bar)."""
        main = self.main
        return main if main is not None and main.is_mounted and main.is_running and self.is_running else None

    def on_gpu_stats_ready(self, message: GpuStatsReady) -> None:
        self.gpu_stats = (message.gpus, message.elsewhere)  # (a main screen mounted later shows it then)
        if (main := self._showing) is not None:
            main.show_gpus(message.gpus, message.elsewhere)

    def on_needs_init(self, message: NeedsInit) -> None:
        self.push_screen(InitScreen(message.reason))

    @work(thread=True, exclusive=True, group="init", exit_on_error=False, name="init")
    def run_init(self) -> None:
        from nightlab.agent.actions import InitOptions

        def progress(elapsed: float, line: str) -> None:
            self.post_message(InitProgress(f"{elapsed:5.1f} s  {line[:120]}"))

        def say(line: str) -> None:  # init's own lines (what it runs, what it found) go to the progress line
            self.post_message(InitProgress(line[:160]))

        res = self.desk().init(InitOptions(yes=True), progress=progress, say=say)
        self.post_message(InitDone(init_summary(res)))

    # ---------------------------------------------------------------------------------------------- the agent
    def desk(self) -> FrontDesk:
        """This thread's front desk: everything this app reads of the project and every action it takes go through
        it (call it from a worker; SQLite connections stay with the thread that opened them). Imported on first
        use, off the UI thread: the first frame does not wait for it."""
        from nightlab.agent.actions import FrontDesk

        desk: FrontDesk | None = getattr(self._local, "desk", None)
        if desk is None or getattr(self._local, "cfg", None) is not self.cfg:
            desk = FrontDesk(self.root, cfg=self.cfg, who=WHO)
            self._local.desk, self._local.cfg = desk, self.cfg
        return desk

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False, name="store poller")
    def _poll(self) -> None:
        worker = get_current_worker()
        desk = self.desk()
        waker = desk.watch()
        self._waker = waker
        last: Snapshot | None = None
        try:
            while not worker.is_cancelled:
                snap = desk.snapshot()
                if snap != last:
                    self.post_message(SnapshotReady(snap))
                    last = snap
                # wait for an event or the poll interval, in short slices so cancellation is noticed at once
                deadline = time.monotonic() + self.poll_s
                while not worker.is_cancelled and time.monotonic() < deadline:
                    if waker.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                        break
        finally:
            self._waker = None
            waker.close()

    def poke(self) -> None:
        """Look at the store again now (after our own write, or an engine event)."""
        w = self._waker
        if w is not None:
            w.poke()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap = message.snapshot
        first = self.snapshot is None
        self.snapshot = snap
        if snap.session is not None:
            if first and self.requested_mode in MODES:
                if snap.session.mode != self.requested_mode:
                    self._mode_pending = self.requested_mode
                    self._persist_mode(self.requested_mode)
            elif self._mode_pending is not None:
                if snap.session.mode == self._mode_pending:
                    self._mode_pending = None  # our own write has landed
            elif snap.session.mode != self.mode:
                self.mode = snap.session.mode  # changed elsewhere (another TUI, `nightlab run --mode`)
        if (main := self._showing) is not None:
            main.show_snapshot(snap)
        self._say_session_end()
        if first:
            self._autostart(snap)
            # What exists once the first data is on screen (modules, widgets, styles) lives as long as the app:
            # frozen out of the collector, a full collection no longer walks it — those took 100-300 ms each, the
            # first one landing on the first ctrl+p or key a person pressed.
            self.call_after_refresh(gc.freeze)

    def _autostart(self, snap: Snapshot) -> None:
        if self._started or self.start_policy == "never":
            return
        if self.start_policy == "now":
            self.start_engine(new_session=True)
        elif snap.session is not None and snap.session.state != SessionState.DONE and \
                snap.engine != EngineState.AWAKE:
            self.start_engine()

    # ---------------------------------------------------------------------------------------------- engine
    def start_engine(self, new_session: bool | None = None) -> None:
        snap = self.snapshot
        if self.cfg is None or snap is None:
            self.notify("The project is still loading.")
            return
        if self._engine_worker is not None and self._engine_worker.is_running:
            self.notify("The engine is already running in this window.")
            return
        if snap.engine == EngineState.AWAKE:
            self.notify("Another nightlab engine is awake for this project; this window follows it.")
            return
        if new_session is None:
            new_session = snap.session is None or snap.session.state == SessionState.DONE
        self._started = True
        self._engine_worker = self._run_engine(new_session)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False, name="engine")
    def _run_engine(self, new_session: bool) -> None:
        from nightlab.agent.actions import LockHeld

        engine = self.desk().start(self.cfg, mode=self.mode, budget=self.budget if new_session else None,
                                   resume=not new_session, on_event=self._engine_callback,
                                   unsafe_no_sandbox=self.unsafe_no_sandbox)
        self.engine = engine
        self.post_message(EngineEvent("engine", "engine started" if new_session else "engine resumed", {}))
        try:
            # stopped from here (quit), it hands over to the detached jobs, which wake nightlab when they end
            summary = engine.run()
        except LockHeld as err:
            self.post_message(EngineStopped("lock", str(err)))
            return
        finally:
            self.engine = None
            self.poke()
        self.post_message(EngineStopped(summary.state))

    def _engine_callback(self, kind: str, text: str, data: dict[str, Any]) -> None:
        """Called on the engine's thread: post, never touch widgets."""
        self.post_message(EngineEvent(kind, text, data))
        self.poke()

    def on_engine_event(self, message: EngineEvent) -> None:
        asks = message.kind == EventKind.APPROVAL or (message.kind == EventKind.PROPOSED and self.mode == Mode.STEP)
        if asks and self.cfg is not None and self.cfg.notify.bell:
            self.bell()
        if message.kind in NOTIFY_EVENTS or message.kind == "engine":
            if message.kind in (EventKind.FAILED, EventKind.POLICY_ERROR, EventKind.LOST, EventKind.REPORT_ERROR):
                self.notify(message.text, severity="error", timeout=6)
            else:
                self.notify(message.text, timeout=6)

    def on_engine_stopped(self, message: EngineStopped) -> None:
        if message.state == "lock":
            self.notify(message.note + "; this window follows it", severity="warning")
        elif message.state == SessionState.DONE:
            self._say_done = True  # said from a snapshot that holds the session's final results
            self._say_session_end()
        self.poke()

    def _say_session_end(self) -> None:
        from nightlab.tui.data import session_end_text

        snap = self.snapshot
        if self._say_done and snap is not None and snap.engine == EngineState.DONE:
            self._say_done = False
            self.notify(session_end_text(snap), timeout=15)

    # ---------------------------------------------------------------------------------------------- mode
    def set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        self._mode_pending = mode if self.snapshot is not None and self.snapshot.session is not None else None
        self._persist_mode(mode)
        if mode == Mode.AUTONOMOUS:
            self.notify("AUTONOMOUS: proposals run without asking, within the budget. shift+tab or ctrl+c drops "
                        "back to step.")
        else:
            self.notify("STEP: nothing runs without your approval. Running jobs continue.")

    def watch_mode(self, mode: str) -> None:
        if (main := self._showing) is not None:
            main.set_mode(mode)

    @work(thread=True, group="mode", exit_on_error=False, name="save mode")
    def _persist_mode(self, mode: str) -> None:
        self.desk().set_mode(Mode(mode), engine=self.engine)

    def action_toggle_mode(self) -> None:
        self.set_mode(Mode.AUTONOMOUS if self.mode == Mode.STEP else Mode.STEP)

    def action_step_mode(self) -> None:
        if self.mode == Mode.STEP:
            self.notify("Already in step mode. Running jobs continue; x stops one, q quits (jobs keep running).")
            return
        self.set_mode(Mode.STEP)

    # ---------------------------------------------------------------------------------------------- approvals
    def pending_for(self, exp_id: int, kind: str) -> Any:
        snap = self.snapshot
        if snap is None:
            return None
        return next((a for a in snap.approvals if a.experiment_id == exp_id and a.kind == kind), None)

    @work(thread=True, exit_on_error=False, name="decide")
    def decide(self, appr: Any, state: str, feedback: str | None = None) -> None:
        self.desk().decide(appr, ApprovalState(state), feedback)
        verb = "Approved" if state == ApprovalState.APPROVED else "Rejected"
        self.post_message(ActionDone(f"{verb} {appr.kind} #{appr.experiment_id}" +
                                     (f": {feedback}" if feedback else "")))
        self.poke()

    # ---------------------------------------------------------------------------------------------- editing
    def _run_editor(self, files: list[str]) -> int | None:
        """Hand the terminal to $VISUAL / $EDITOR (App.suspend); without a terminal (tests), just run it. None when
        there is no editor to run: the user is told which variable to set, and nothing is changed."""
        from nightlab.errors import NightlabError
        from nightlab.tui.editor import editor_command

        try:
            cmd = editor_command(files)
        except NightlabError as err:
            self.notify(str(err), severity="error", timeout=10)
            return None
        try:
            with self.suspend():
                rc = subprocess.call(cmd)
        except SuspendNotSupported:
            rc = subprocess.call(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        except OSError as err:  # it vanished between the look-up and the start
            self.refresh()
            self.notify(f"could not start the editor {cmd[0]!r}: {err}", severity="error", timeout=10)
            return None
        self.refresh()
        return rc

    def edit_hypothesis(self, exp_id: int) -> None:
        from nightlab.agent.actions import hypothesis_text, parse_hypothesis

        snap = self.snapshot
        e = snap.experiments.get(exp_id) if snap else None
        if e is None:
            return
        fd, name = tempfile.mkstemp(prefix=f"nightlab-{exp_id}-", suffix=".md")
        with os.fdopen(fd, "w") as f:
            f.write(hypothesis_text(e))
        try:
            rc = self._run_editor([name])
            text = Path(name).read_text()
        finally:
            os.unlink(name)
        if rc is None:
            return
        if rc != 0:
            self.notify(f"The editor exited with {rc}; the hypothesis is unchanged.", severity="warning")
            return
        edited = parse_hypothesis(text)
        if edited is None:
            self.notify("Empty hypothesis: unchanged.", severity="warning")
            return
        title, rationale = edited
        if title == e.title and rationale == e.rationale.strip():
            self.notify("Hypothesis unchanged.")
            return
        self._save_hypothesis(exp_id, title, rationale)

    @work(thread=True, exit_on_error=False, name="save hypothesis")
    def _save_hypothesis(self, exp_id: int, title: str, rationale: str) -> None:
        self.desk().edit_hypothesis(exp_id, title, rationale)
        self.post_message(ActionDone(f"Edited the hypothesis of #{exp_id}: {title}"))
        self.poke()

    def edit_patch(self, exp_id: int) -> None:
        self._prepare_patch_edit(exp_id)

    @work(thread=True, exit_on_error=False, name="edit patch")
    def _prepare_patch_edit(self, exp_id: int) -> None:
        paths = self.desk().patch_files(exp_id)
        self.call_from_thread(self._edit_files, exp_id, [str(p) for p in paths])

    def _edit_files(self, exp_id: int, paths: list[str]) -> None:
        rc = self._run_editor(paths)
        if rc is None:
            return
        if rc != 0:
            self.notify(f"The editor exited with {rc}; keeping whatever it saved.", severity="warning")
        self._finish_patch_edit(exp_id)

    @work(thread=True, exit_on_error=False, name="save patch")
    def _finish_patch_edit(self, exp_id: int) -> None:
        e = self.desk().save_patch_edit(exp_id)
        if e is None:
            self.post_message(ActionDone(f"The patch of #{exp_id} is unchanged."))
            return
        self.post_message(ActionDone(f"Saved your edit of #{exp_id}'s patch ({(e.commit_sha or '')[:8]})."))
        self.poke()

    # ---------------------------------------------------------------------------------------------- review
    def open_review(self, exp_id: int, mode: ReviewMode) -> None:
        if self.cfg is None:
            return
        self.push_screen(ReviewScreen(exp_id, mode))

    @work(thread=True, exit_on_error=False, name="promote")
    def promote(self, exp_id: int, on_done: Callable[[bool], None]) -> None:
        try:
            done = self.desk().promote(exp_id)
        except BaseException:
            self.call_from_thread(on_done, False)
            raise
        self.call_from_thread(on_done, True)
        self.post_message(ActionDone(f"Committed {done.commit[:10]} onto {done.branch}: {done.title}"))
        self.poke()

    # ---------------------------------------------------------------------------------------------- report
    def write_report(self) -> None:
        if self.cfg is None or self.snapshot is None or self.snapshot.session is None:
            self.notify("No session to report on yet: start one with s.")
            return
        self.notify("Writing the session report…")
        self._write_report()

    @work(thread=True, exclusive=True, group="report", exit_on_error=False, name="report")
    def _write_report(self) -> None:
        """The agent writes it (reading this thread's store, drawing, writing files); the app only says where."""
        files = self.desk().write_report()
        self.post_message(ActionDone(f"Report: {files.html} (Markdown and PNGs beside it)"))

    # ---------------------------------------------------------------------------------------------- logs, jobs
    def open_log(self, path: Path, title: str) -> None:
        self.push_screen(LogViewerScreen(path, title))

    def confirm_stop(self, exp_id: int) -> None:
        """Ask, then stop the row's running job (its own, or that of its seed re-run)."""
        snap = self.snapshot
        e = snap.experiments.get(exp_id) if snap else None
        job = snap.latest_job.get(exp_id) if snap else None
        if job is None or job.state not in OPEN_JOB_STATES:
            self.notify(f"#{exp_id} has no running job.")
            return
        job_exp = job.experiment_id

        def answer(yes: bool | None) -> None:
            if yes:
                self._stop_job(exp_id)

        which = f"#{exp_id}" if job_exp == exp_id else f"#{exp_id} (its re-run #{job_exp})"
        self.push_screen(ConfirmDialog(f"Stop the running job of {which}?",
                                       f"{e.title if e else ''}\nIt is killed and recorded as cancelled; the engine "
                                       "and other jobs carry on."), answer)

    @work(thread=True, exit_on_error=False, name="stop job")
    def _stop_job(self, exp_id: int) -> None:
        self.desk().stop_job(exp_id)
        self.post_message(ActionDone(f"Stopping the job of #{exp_id}."))
        self.poke()

    # ---------------------------------------------------------------------------------------------- feedback
    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity=message.severity)

    def on_init_progress(self, message: InitProgress) -> None:
        if isinstance(self.screen, InitScreen):
            self.screen.progress(message.text)

    def on_init_done(self, message: InitDone) -> None:
        # what init found stays on screen until the user has read it (enter opens the project, loaded behind)
        if isinstance(self.screen, InitScreen):
            self.screen.finished(message.text)
        else:
            self.notify(message.text, timeout=15)
        self._open_project()

    def report_worker_error(self, worker: Worker[Any]) -> None:
        """The one place a failed background task becomes visible: an error dialog, never a crash."""
        err = worker.error
        if err is None:
            return
        if worker.name == "init" and isinstance(self.screen, InitScreen):
            self.screen.failed()
            self.screen.progress("")
        if isinstance(err, NightlabError):
            message, details = str(err), ""
        else:
            message = f"{type(err).__name__}: {err}"
            details = "".join(traceback.format_exception(err))[-4000:]
        self.push_screen(ErrorDialog(f"{worker.name.capitalize()} failed", message, details))

    # ---------------------------------------------------------------------------------------------- themes, help
    @property
    def syntax_theme(self) -> str:
        return self.theme_info.syntax

    def apply_theme(self, name: str, remember: bool = False) -> None:
        """Swap the theme stylesheet in place (package data read via importlib.resources) and restyle."""
        info = self._pick_theme(name)
        self.theme_info = info
        sheet = self.stylesheet
        for key in [k for k in sheet.source if k[0].startswith(THEME_SOURCE)]:
            del sheet.source[key]
        sheet.add_source(info.css, read_from=(f"{THEME_SOURCE}{info.name}.tcss", ""), is_default_css=False)
        if self.theme != info.base:
            self.theme = info.base
        self.refresh_css(animate=False)
        if (main := self._showing) is not None:
            main.restyle()
        for screen in self.screen_stack:
            if isinstance(screen, ReviewScreen):
                screen.query_one("#review-diff").set_syntax_theme(info.syntax)  # type: ignore[attr-defined]
        if remember:
            self._remember_theme(info.name)

    @work(thread=True, exit_on_error=False, name="save theme")
    def _remember_theme(self, name: str) -> None:
        save_theme(name)
        self.post_message(ActionDone(f"Theme: {name} (remembered)"))

    def action_next_theme(self) -> None:
        names = available_themes()
        i = names.index(self.theme_info.name) if self.theme_info.name in names else -1
        self.apply_theme(names[(i + 1) % len(names)], remember=True)

    def action_projects(self) -> None:
        """The overview of every project; the one chosen there replaces this one (see `run_tui`)."""
        from nightlab.tui.screens.projects import ProjectsScreen

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.next_root = path
                self.exit(0)

        self.push_screen(ProjectsScreen(self.root), chosen)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.user.keys))

    def action_command_palette(self) -> None:
        """Textual's palette, over a dimmed picture of this screen taken once (see nightlab/tui/palette.py)."""
        from nightlab.tui.palette import Palette

        if self.use_command_palette and not isinstance(self.screen, Palette):
            self.push_screen(Palette())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from nightlab.tui.commands import system_commands

        yield from system_commands(self, screen)

    async def action_quit(self) -> None:
        """Stop the engine loop after its current step (jobs keep running detached), then exit."""
        engine, worker = self.engine, self._engine_worker
        if engine is not None:
            engine.stop()
            self.notify("Stopping the engine after its current step; training jobs keep running.")
        if worker is not None and worker.is_running:
            try:
                await asyncio.wait_for(worker.wait(), timeout=30)
            except Exception:  # leaving anyway; the engine resumes from the store next time
                pass
        self.workers.cancel_group(self, "poll")
        self.exit(0)


def init_summary(res: Any) -> str:
    """What `init` detected, one fact a line: the user checks it before the first session spends anything."""
    cfg = res.config
    lines = [f"Wrote {res.path.name}:",
             f"  command   {cfg.command}",
             f"  metric    {cfg.metric.name} ({'higher' if cfg.metric.goal == Goal.MAXIMIZE else 'lower'} is better)",
             f"  timeout   {cfg.timeout:g} s a run"]
    if res.baseline is not None:
        took = f" in {res.seconds:.1f} s" if res.seconds is not None else ""
        lines.append(f"  baseline  {cfg.metric.name} = {fmt_metric(res.baseline)}{took}")
    elif res.crashed:
        lines.append(f"  baseline  crashed: {res.crashed}")
    lines.append(f"  editable  {', '.join(cfg.editable) or 'none'}")
    if cfg.links:
        lines.append(f"  linked    {', '.join(cfg.links)}")
    lines.extend(f"  note      {n}" for n in res.notes)
    return "\n".join(lines)


def run_tui(root: Path, mode: str | None = None, budget: int | None = None, start: bool = False,
            unsafe_no_sandbox: bool = False) -> int:
    """Open the TUI on `root` (the CLI's `nightlab` / `nightlab tui` / `nightlab demo`); returns an exit code."""
    if os.environ.get("NIGHTLAB_NO_TUI"):
        raise NightlabError("the TUI is disabled here (NIGHTLAB_NO_TUI is set); use `nightlab status`")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NightlabError("the TUI needs a terminal; use `nightlab status`, `nightlab run` or `nightlab log`")
    app = NightlabApp(Path(root), mode=mode, budget=budget, start="now" if start else "auto",
                      unsafe_no_sandbox=unsafe_no_sandbox)
    result = app.run()
    while app.next_root is not None and app.return_code in (None, 0):  # a project opened from the overview
        app = NightlabApp(app.next_root)
        result = app.run()
    return int(result or 0) if app.return_code in (None, 0) else int(app.return_code or 1)
