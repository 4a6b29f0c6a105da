"""The front desk: every action a user takes on a project, in one place.

The CLI (commands.py), the console approver (console.py) and the TUI ask the desk and do nothing else with git or
the store: approve, reject with feedback, edit a proposal's hypothesis or its patch, promote, stop a job, change the
mode, start or wake the engine. Each action checks what it may do, does it, records it (an event naming who), and
tells whatever waits on the project (`signal`, and a `nightlab wake` when an answer reaches a hibernating session),
so it behaves the same from every front-end. The desk never prompts: a front-end brings its own I/O — a terminal
prompt, a dialog, an editor — and passes in what the user said (Aider's way of running one core under any UI).

One editing semantics: a proposal's patch is edited in its worktree and folded into the experiment's one commit
(amended, its branch following), so an experiment stays one commit on top of its parent whoever edits it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightlab.agent import artifacts, memory, plan, remote
from nightlab.agent.config import ProjectConfig, find_config, load_config, set_command
from nightlab.agent.doctor import PROBLEM, Finding
from nightlab.agent.learn import LearnOptions, LearnResult
from nightlab.agent.lock import LockHeld, ProjectLock
from nightlab.agent.policy_view import view
from nightlab.agent.project_init import Ask, InitOptions, InitResult, init_project
from nightlab.agent.project_init import Progress as InitProgress
from nightlab.agent.report import ReportFiles, write_session_report
from nightlab.agent.states import ApprovalKind, ApprovalState, EventKind, Kind, Mode, RunResult, SessionState, Status
from nightlab.agent.store import Approval, Experiment, Job, Store
from nightlab.agent.views import DeskReads, signer_name
from nightlab.agent.workspace import Workspace
from nightlab.errors import GitError, NightlabError
from nightlab.sandbox.watch import signal_project

if TYPE_CHECKING:
    from nightlab.agent.engine import Approver, Engine, EventSink
    from nightlab.agent.mlflow_sync import ExportResult as MlflowExport
    from nightlab.agent.policy.base import Policy

HYPOTHESIS_TEMPLATE = ("# Edit the hypothesis of experiment #{id}. Lines starting with # are ignored.\n"
                       "# First line: the title (also the commit message). The rest: the rationale.\n"
                       "{title}\n\n{rationale}\n")


@dataclass
class Preview:
    """What a promote would commit: the whole change against the user's branch, from where its chain started."""

    diff: str
    stat: str
    branch: str
    files: list[str]
    base: str
    artifacts: artifacts.Artifacts | None = None  # the files the run wrote (they stay there; promote copies none)
    command: tuple[str, str] | None = None  # (the project's command now, the experiment's)

    def command_text(self) -> str:
        """The command change as diff-like lines for a review, "" when the command stays as it is."""
        if self.command is None:
            return ""
        old, new = self.command
        return f"command (nightlab.toml):\n- {old}\n+ {new}\n"


@dataclass
class Promoted:
    commit: str
    branch: str
    title: str


class FrontDesk(DeskReads):
    """The actions on one project, on top of what it reads (views.DeskReads: its root, config, this thread's store
    connection, the snapshot). `who` is recorded with every decision and event ("tui", "cli:<pid>", "console")."""

    def __init__(self, root: Path, *, store: Store | None = None, cfg: ProjectConfig | None = None,
                 who: str = "cli") -> None:
        super().__init__(root, store=store, cfg=cfg, who=who)
        self._ws: Workspace | None = None

    @classmethod
    def of_engine(cls, engine: Engine) -> FrontDesk:
        """The desk of the project an engine runs on, on the engine's own store connection (an approver is called
        on the engine's thread)."""
        return cls(engine.root, store=engine.store, cfg=engine.cfg, who=engine.options.who)

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace(self.root)
        return self._ws

    def _tell(self, wake: bool = False) -> None:
        """Whatever watches the project looks again; with `wake`, a hibernating session is started to act on it."""
        signal_project(self.paths.dir)
        if wake:
            self._wake_if_idle()

    def _wake_if_idle(self) -> None:
        """An answer given while no engine runs (it hibernated) starts one, as a finished job would."""
        if ProjectLock(self.paths.dir).is_held():
            return
        subprocess.Popen([sys.executable, "-m", "nightlab", "wake", "--quiet", str(self.root)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)

    # ------------------------------------------------------------------------------------------- open a project
    def open_project(self) -> ProjectConfig | None:
        """The project's config with its state folder ready, or None when it has no nightlab config yet."""
        if find_config(self.root) is None:
            return None
        self._cfg = load_config(self.root)
        self.ws.ensure_state_dir()
        return self._cfg

    # ------------------------------------------------------------------------------------------- approvals
    def approve(self, exp_id: int) -> Approval:
        """Run the proposal #exp_id (its pending hypothesis approval)."""
        return self._decide_hypothesis(exp_id, ApprovalState.APPROVED, None)

    def reject(self, exp_id: int, feedback: str | None = None) -> Approval:
        """Do not run the proposal #exp_id; the feedback is what the policy reads about it."""
        return self._decide_hypothesis(exp_id, ApprovalState.REJECTED, feedback)

    def decide(self, approval: Approval, state: ApprovalState, feedback: str | None = None) -> Approval:
        """Answer any pending approval (a proposal, a promote, a budget extension), e.g. the TUI's queue."""
        if approval.kind == ApprovalKind.HYPOTHESIS and approval.experiment_id is not None:
            return self._decide_hypothesis(approval.experiment_id, state, feedback)
        if not self.store.decide(approval.id, state, self.who, feedback):
            raise NightlabError(f"that {approval.kind} request was already decided")
        self._tell(wake=True)
        return self.store.approval(approval.id)

    def decide_budget(self, state: ApprovalState, feedback: str | None = None,
                      kind: ApprovalKind = ApprovalKind.BUDGET) -> Approval:
        """Extend (approve) or refuse (reject) the model-cost budget the engine is waiting on (`kind` COMPUTE:
        going over the session's compute budget, [autonomy] ask_over_budget)."""
        appr = next(reversed([a for a in self.store.approvals(ApprovalState.PENDING) if a.kind == kind]), None)
        if appr is None:
            raise NightlabError("no budget extension is waiting for approval" if kind == ApprovalKind.BUDGET else
                                "no request to go over the compute budget is waiting for approval")
        self.store.decide(appr.id, state, self.who, feedback)
        self._tell(wake=True)
        return self.store.approval(appr.id)

    def _decide_hypothesis(self, exp_id: int, state: ApprovalState, feedback: str | None) -> Approval:
        appr = self.store.pending_approval(kind=ApprovalKind.HYPOTHESIS, experiment_id=exp_id)
        if appr is None:
            e = self.store.find_experiment(exp_id)
            raise NightlabError(f"experiment #{exp_id} has no pending approval (it is {e.status if e else 'unknown'})")
        if not self.store.decide(appr.id, state, self.who, feedback):
            raise NightlabError(f"approval for #{exp_id} was already decided")
        self._tell(wake=True)
        return self.store.approval(appr.id)

    # ------------------------------------------------------------------------------------------- editing
    def _proposal(self, exp_id: int) -> Experiment:
        e = self.experiment(exp_id)
        if e.status != Status.PROPOSED:
            raise NightlabError(f"#{exp_id} is {e.status}: only a proposal waiting for approval can be edited")
        return e

    def edit_hypothesis(self, exp_id: int, title: str, rationale: str) -> Experiment:
        """Replace a proposal's title and rationale (what the user approves, and the message a promote commits)."""
        self._proposal(exp_id)
        title = title.strip()
        if not title:
            raise NightlabError(f"#{exp_id}: a hypothesis needs a title")
        self.store.update_experiment(exp_id, title=title, rationale=rationale.strip())
        self.store.event(EventKind.EDITED, f"#{exp_id} hypothesis edited in the {signer_name(self.who)}",
                         experiment_id=exp_id)
        self._tell()
        return self.store.experiment(exp_id)

    def patch_files(self, exp_id: int) -> list[Path]:
        """The files a proposal changes, in its worktree (made again if it is gone), for the user's editor."""
        e = self._proposal(exp_id)
        parent = self.store.find_experiment(e.parent_id) if e.parent_id is not None else None
        if parent is None or not parent.commit_sha or not e.commit_sha:
            raise NightlabError(f"#{exp_id} has no commit to edit yet")
        wt = self.ws.checkout(e.id, e.commit_sha, self.cfg.links)
        files = self.ws.changed_files(parent.commit_sha, e.commit_sha) or [x["path"] for x in e.edits]
        paths = [wt / f for f in files if (wt / f).exists()]
        if not paths:
            raise NightlabError(f"#{exp_id} changes no file that still exists")
        return paths

    def save_patch_edit(self, exp_id: int) -> Experiment | None:
        """Fold what the user changed in the proposal's worktree into its commit; None when nothing changed."""
        e = self._proposal(exp_id)
        if not self.ws.worktree_dirty(exp_id):
            return None
        parent = self.store.find_experiment(e.parent_id) if e.parent_id is not None else None
        sha = self.ws.amend(exp_id, e.branch)
        patch = self.ws.diff(parent.commit_sha, sha) if parent is not None and parent.commit_sha else e.patch
        self.store.update_experiment(exp_id, commit_sha=sha, patch=patch)
        self.store.event(EventKind.EDITED, f"#{exp_id} patch edited in the {signer_name(self.who)}",
                         experiment_id=exp_id,
                         data={"commit": sha})
        self._tell()
        return self.store.experiment(exp_id)

    def edit_patch(self, exp_id: int, edit: Callable[[list[Path]], object]) -> Experiment | None:
        """`patch_files`, the user's `edit` of them (an editor), then `save_patch_edit`."""
        edit(self.patch_files(exp_id))
        return self.save_patch_edit(exp_id)

    # ------------------------------------------------------------------------------------------- review, promote
    def diff(self, exp_id: int, *, against_base: bool = False, stat: bool = False) -> str:
        """An experiment's change: against its parent, or (`against_base`) the whole chain against the user's
        branch as it was when the chain started; `stat`: a one-line summary instead of the diff."""
        e = self.experiment(exp_id)
        if not e.commit_sha:
            raise NightlabError(f"experiment #{e.id} has no commit ({e.status})")
        if against_base:
            s = self.store.session(e.session_id) if e.session_id else None
            base = self.store.chain_base(e) or (s.base_commit if s and s.base_commit else self.ws.head_commit())
        else:
            parent = self.store.find_experiment(e.parent_id) if e.parent_id else None
            base = parent.commit_sha if parent and parent.commit_sha else e.commit_sha
        return self.ws.diff_stat(base, e.commit_sha).summary() if stat else self.ws.diff(base, e.commit_sha)

    def preview_promote(self, exp_id: int) -> Preview:
        """What promoting the experiment would commit onto the user's branch; refuses what cannot be promoted."""
        e = self.experiment(exp_id)
        if e.status == Status.PROMOTED:
            raise NightlabError(f"experiment #{e.id} is already promoted")
        if not e.commit_sha:
            raise NightlabError(f"experiment #{e.id} has no commit to promote ({e.status})")
        if e.run_result != RunResult.SUCCEEDED and e.kind != Kind.BASELINE:
            raise NightlabError(f"experiment #{e.id} did not succeed ({e.run_result or e.status}); only a working "
                                "result can be promoted")
        if e.kind == Kind.RERUN and e.rerun_of is not None:
            raise NightlabError(f"experiment #{e.id} re-runs #{e.rerun_of} with another seed; promote #{e.rerun_of}")
        base = self.store.chain_base(e) or self.ws.head_commit()
        command = self._command_against_project(e)
        try:
            patch, files = self.ws.promote_check(base, e.commit_sha)
        except GitError:
            if command is None or self.ws.changed_files(base, e.commit_sha):
                raise
            patch, files = "", []  # only the command changes
        return Preview(diff=patch, stat=self.ws.diff_stat(base, e.commit_sha).summary() if files else "command only",
                       branch=self.ws.current_branch() or "HEAD", files=files, base=base,
                       artifacts=artifacts.read(self.paths.dir, e.id), command=command)

    def command_change(self, exp_id: int, against_base: bool = False) -> tuple[str, str] | None:
        """(old, new) when the experiment runs another command than its parent (or, `against_base`, than the
        project), else None: what `nightlab diff` shows above the code diff."""
        e = self.experiment(exp_id)
        if against_base:
            return self._command_against_project(e)
        parent = self.store.find_experiment(e.parent_id) if e.parent_id is not None else None
        project = self.cfg.command
        old, new = (parent.command if parent else None) or project, e.command or project
        return None if old == new else (old, new)

    def _command_against_project(self, e: Experiment) -> tuple[str, str] | None:
        if not e.command:
            return None
        current = load_config(self.root).command
        return None if current == e.command else (current, e.command)

    def promote(self, exp_id: int) -> Promoted:
        """Commit the experiment's change onto the user's branch (squashed, the hypothesis as the message) — the
        only action that ever touches the user's branch; it refuses when the touched files have local changes."""
        e = self.experiment(exp_id)
        pv = self.preview_promote(exp_id)
        message = e.title.strip()
        if e.rationale.strip():
            message += "\n\n" + e.rationale.strip()
        message += f"\n\nPromoted from nightlab experiment #{e.id} ({e.branch}).\n"
        if pv.command is not None:
            message += f"Run it with: {pv.command[1]}\n"
        message += "Co-authored-by: nightlab <nightlab@localhost>\n"
        also: list[str] = []
        if pv.command is not None:
            # the setting lives on the command line: the project's command becomes the experiment's, so the next
            # session's baseline runs what was promoted; a tracked config file goes into the same commit
            path = find_config(self.root)
            if path is None:
                raise NightlabError(f"{self.root}: no nightlab.toml to carry the command into; "
                                    f"run it with: {pv.command[1]}")
            rel = path.relative_to(self.root).as_posix()
            if self.ws.is_tracked(path):
                if self.ws.dirty_paths([rel]):
                    raise NightlabError(f"refusing to promote: uncommitted changes in {rel}; commit or stash them "
                                        "first")
                also = [rel]
            if pv.files:
                self.ws.promote_check(pv.base, e.commit_sha or "")
            set_command(path, pv.command[1])
        if pv.files:
            sha = self.ws.promote(pv.base, e.commit_sha or "", message, also=also)
        elif also:
            sha = self.ws.commit_paths(also, message)
        else:
            sha = self.ws.head_commit()  # only an untracked nightlab.toml changed: nothing to commit
        self.store.update_experiment(e.id, status=Status.PROMOTED)
        for a in self.store.approvals(ApprovalState.PENDING):
            if a.experiment_id == e.id and a.kind == ApprovalKind.PROMOTE:
                self.store.decide(a.id, ApprovalState.APPROVED, self.who)
        session = self.store.latest_session()
        self.store.event(EventKind.PROMOTED, f"#{e.id} promoted onto {pv.branch} as {sha[:10]}", experiment_id=e.id,
                         session_id=session.id if session else None, data={"commit": sha})
        self._tell()
        return Promoted(commit=sha, branch=pv.branch, title=e.title)

    # ------------------------------------------------------------------------------------------- jobs
    def running_job(self, exp_id: int) -> Job | None:
        """The open job of an experiment's row: its own, or that of its seed re-run (the newest)."""
        ids = {exp_id} | {x.id for x in self.store.reruns_of(exp_id)}
        jobs = [j for j in self.store.open_jobs() if j.experiment_id in ids]
        return max(jobs, key=lambda j: j.id) if jobs else None

    def stop_job(self, exp_id: int) -> Job:
        """Stop the running job of an experiment's row (killed, recorded as cancelled; the engine carries on)."""
        job = self.running_job(exp_id)
        if job is None:
            raise NightlabError(f"experiment #{exp_id} has no running job")
        if not remote.stop_job(self.root, job, f"stopped by the user ({signer_name(self.who)})"):
            raise NightlabError(f"the job of #{exp_id} is not running any more")
        self.store.event(EventKind.STOP, f"#{job.experiment_id}: job stopped from the {signer_name(self.who)}",
                         experiment_id=job.experiment_id)
        return job

    # ------------------------------------------------------------------------------------------- the session
    def set_mode(self, mode: Mode, engine: Engine | None = None) -> None:
        """Step or autonomous for the current session (and `engine`, when it runs in this process)."""
        mode = Mode(mode)
        if engine is not None:
            engine.options.mode = mode  # it re-reads the session on every tick too
        if not self.paths.has_store():
            return
        session = self.store.latest_session()
        if session is not None:
            self.store.update_session(session.id, mode=mode)
        self._tell()

    def resume_mode(self) -> Mode:
        """The mode of the last session (a new one continues in it), step when there is none."""
        last = self.store.latest_session() if self.paths.has_store() else None
        return Mode(last.mode) if last else Mode.STEP

    def start(self, cfg: ProjectConfig, *, mode: Mode | str, budget: int | None = None, resume: bool = False,
              detach: bool = False, unsafe_no_sandbox: bool = False, approver: Approver | None = None,
              on_event: EventSink | None = None, policy: Policy | None = None,
              deadline: float | None = None) -> Engine:
        """An engine for a new session (or `resume` the last one), ready to `run()`: on this thread (the CLI) or
        a worker (the TUI), whose `stop()` ends it after its current step, handing running jobs over.
        `policy`: one the caller chose (`nightlab explore`); by default the config's."""
        # imported here, not with the desk: the engine and its policies load only once one runs (the TUI opens
        # the desk while its first frame is drawn)
        from nightlab.agent.engine import Engine, EngineOptions

        if deadline is None and not resume and self.paths.has_store():
            # the deadline the approved plan was fitted to (`plan --hours` / `--until`), while it is ahead
            approved = plan.load(self.store, approved=True)
            if approved is not None and approved.deadline is not None and approved.deadline > time.time():
                deadline = approved.deadline
        opts = EngineOptions(mode=Mode(mode), budget=budget, detach=detach, unsafe_no_sandbox=unsafe_no_sandbox,
                             wake=resume, who=self.who, deadline=deadline)
        return Engine(self.root, cfg, options=opts, policy=policy, store=self._store, approver=approver,
                      on_event=on_event)

    # ------------------------------------------------------------------------------------------- the plan
    def draft_plan(self, *, redraft: bool = False, deadline: float | None = None) -> dict[str, Any]:
        """The project's plan as `plan_view` shows it: the newest one, else (or with `redraft`) a new draft from
        the baseline's diagnosis and the moves the builtin policy can propose here (plan.py). A redraft replaces
        the plan being followed only once it is approved. A draft, or the plan given a `deadline` (`plan --hours`
        / `--until`, kept with it), is fitted to the time available: the deadline's (else the open session's) and
        the compute budget's (plan.fit)."""
        if not self.paths.has_store():
            self.ws.ensure_state_dir()
            self._store = Store(self.paths.db)
            self._own_store = True
        old = plan.load(self.store)
        if redraft or old is None:  # a redraft keeps the deadline the plan had
            p = replace(self._draft(), deadline=old.deadline if old is not None else None)
            self._record(EventKind.PLAN, "drafted the plan")
        elif deadline is None:
            return self._plan_shown()
        else:
            p = old
        p = replace(p, deadline=deadline if deadline is not None else p.deadline)
        plan.save(self.store, plan.fit(p, self.time_available(self.plan_deadline(p.deadline))[0],
                                       self.run_overhead()))
        return self._plan_shown()

    def _draft(self) -> plan.Plan:
        from nightlab.agent.ledger import Ledger
        from nightlab.agent.policy.builtin import BuiltinPolicy
        from nightlab.agent.policy_view import build_context

        cfg = self.cfg
        ledger = Ledger.of(self.store, cfg)
        ctx = build_context(self.root, cfg, self.ws, ledger, cfg.search.budget)
        policy = BuiltinPolicy()
        base = ledger.baseline()
        ran = base is not None and base.run_result is not None
        failed = base is not None and ran and base.run_result != RunResult.SUCCEEDED
        on = ctx.best_id if ctx.best_id is not None else (base.id if base is not None else None)
        diagnosis = policy.diagnoses(ctx, on) if on is not None and not failed else []
        return plan.draft(policy.foresee(ctx), diagnosis=diagnosis, baseline_failed=failed,
                          baseline_s=base.seconds if base is not None and ran else None,
                          run_budget=cfg.search.budget, fix_attempts=cfg.search.debug_depth)

    def edit_plan(self, *, drop: Sequence[str] = (), budgets: Sequence[str] = (), order: str | None = None,
                  toml_text: str | None = None, approve: bool = False,
                  deadline: float | None = None) -> dict[str, Any]:
        """Apply a person's edits to the newest plan (drafting one first if there is none, fitted to `deadline`
        when given) and approve it when asked; a PlanError naming the phase or line at fault leaves the stored plan
        as it was."""
        self.draft_plan(deadline=deadline)
        p = plan.load(self.store)
        assert p is not None
        if toml_text is not None:
            p = plan.from_toml(p, toml_text)
        for name in drop:
            p = plan.drop(p, name)
        for spec in budgets:
            p = plan.set_budget(p, spec)
        if order:
            p = plan.reorder(p, order)
        if approve and p.approved is None:
            if not p.planned:
                raise plan.PlanError("the plan has no phase with runs left to approve (give one a budget)")
            p = replace(p, approved=time.time(), since_exp=self.store.last_experiment_id())
        plan.save(self.store, p)
        self._record(EventKind.PLAN, "approved the plan" if approve else "edited the plan")
        self._tell()
        return self._plan_shown()

    def _plan_shown(self) -> dict[str, Any]:
        data = self._plan_data()
        assert data is not None  # just drafted or saved
        return data

    def plan_toml(self) -> str:
        """The newest plan as the TOML a person edits (drafting one first if there is none)."""
        self.draft_plan()
        p = plan.load(self.store)
        assert p is not None
        return plan.to_toml(p)

    def _record(self, kind: EventKind, message: str) -> None:
        session = self.store.latest_session()
        self.store.event(kind, f"{message} ({self.who})", session_id=session.id if session else None)

    def steps_recorded(self, session_id: int) -> int:
        """How many decision steps a session recorded in the experience store (what `nightlab explore` reports)."""
        return len(self.store.steps(session_id=session_id))

    def wake(self, on_event: EventSink | None = None) -> str:
        """Resume a hibernating session (what a job's end and cron run); idempotent. Says why when nothing woke."""
        if not self.paths.has_store():
            return "nothing to wake: no session in this project"
        if ProjectLock(self.paths.dir).is_held():
            return "an engine is already awake for this project"
        last = self.store.latest_session()
        if last is None:
            return ""
        engine = self.start(self.cfg, mode=last.mode, resume=True, detach=True, unsafe_no_sandbox=last.unsafe,
                            on_event=on_event)
        try:
            if last.state == SessionState.DONE:
                engine.settle(last)  # nothing to continue, but finished jobs still get analysed
            else:
                engine.run()
        except LockHeld:
            return "an engine is already awake for this project"
        return ""

    # ------------------------------------------------------------------------------------------- what the user reads
    def write_report(self, session_id: int | None = None, out_dir: Path | None = None) -> ReportFiles:
        """The morning report of a session (default: the latest) as HTML, Markdown and PNGs; where it went."""
        if not self.paths.has_store():
            raise NightlabError(f"{self.root}: no session to report on yet (run `nightlab run` first)")
        return write_session_report(self.root, self.cfg, self.store, session_id, out_dir)

    def memory(self, query: str = "") -> str:
        """The record of hypotheses and outcomes the policies read (only those matching every word of `query`)."""
        if not self.paths.has_store():
            return "(nothing tried yet)"
        items = memory.settled([view(e) for e in self.store.experiments()], include_pending=True)
        if query:
            items = memory.search(items, query)
        return memory.format_memory(items, limit=10_000)


    # ------------------------------------------------------------------------------------------- set up, check
    def init(self, opts: InitOptions, *, ask: Ask | None = None, progress: InitProgress | None = None,
             say: Callable[[str], None] = print) -> InitResult:
        """Set the project up (`nightlab init`, the TUI's setup screen): detect the command and metric, run the
        baseline once, write nightlab.toml. `ask` and `progress` are the front-end's own I/O."""
        res = init_project(self.root, opts, ask=ask, progress=progress, say=say)
        self._cfg = res.config
        return res

    def doctor(self, sandbox: bool = True) -> list[Finding]:
        """Check (and repair what can be repaired of) the project's state and this machine's sandbox."""
        from nightlab.agent.doctor import run_doctor

        return run_doctor(self.root, sandbox=sandbox)

    # ------------------------------------------------------------------------------------------- exports
    def export_trajectories(self, fmt: str) -> list[dict[str, Any]]:
        """The decision steps of the project as training examples (`nightlab export sft|rl`), secrets scrubbed."""
        from nightlab.agent.trajectories import export_trajectories

        return export_trajectories(self.root, self.cfg, self.store, fmt)  # type: ignore[arg-type]

    def export_mlflow(self, tracking_uri: str | None, *, experiment: str | None = None,
                      progress: Callable[[int, int], None] | None = None) -> MlflowExport:
        """Log the project's runs to MLflow: at `tracking_uri` (relative to the current folder), else the config's
        (relative to the project), else $MLFLOW_TRACKING_URI; idempotent."""
        from nightlab.agent import mlflow_sync

        cfg = self.cfg  # a project without a config says so before anything else
        if tracking_uri:
            uri = mlflow_sync.resolve_uri(tracking_uri, Path.cwd())
        elif cfg.mlflow.tracking_uri:
            uri = mlflow_sync.resolve_uri(cfg.mlflow.tracking_uri, self.root)
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            uri = mlflow_sync.resolve_uri(os.environ["MLFLOW_TRACKING_URI"], Path.cwd())
        else:
            raise NightlabError("no MLflow tracking URI: pass --tracking-uri (e.g. sqlite:///mlflow.db), or set "
                                "[mlflow] tracking_uri in nightlab.toml or MLFLOW_TRACKING_URI")
        store = self.store  # "no experiments yet" when there is none
        return mlflow_sync.export(self.root, cfg, store, uri, experiment=experiment, progress=progress)

    def export_tensorboard(self, session_id: int | None = None, dest: Path | None = None) -> tuple[int, int, Path]:
        """The TensorBoard event files a session's runs wrote, one folder a run under `dest` (default: the state
        folder's tensorboard/session-N): (runs gathered, session, dest)."""
        from nightlab.agent import tbevents
        from nightlab.agent.run_metrics import EVENTS_DIR

        store = self.store  # "no experiments yet" when there is none
        latest = store.latest_session()
        sid = session_id if session_id is not None else (latest.id if latest else None)
        exps = [e for e in store.experiments() if e.session_id == sid]
        if sid is None or not exps:
            raise NightlabError(f"no experiments in session {sid}" if sid is not None else "no session yet")
        runs = []
        for e in exps:
            job = store.latest_job(e.id)
            if job is not None:
                runs.append((tbevents.run_label(e.id, e.title), Path(job.run_dir) / EVENTS_DIR))
        dest = dest if dest is not None else self.paths.dir / "tensorboard" / f"session-{sid}"
        n = tbevents.gather(runs, dest)
        if n == 0:
            raise NightlabError(f"no run of session {sid} wrote TensorBoard event files")
        return n, sid, dest


def explore_policy(temperature: float) -> Policy:
    """`nightlab explore`'s policy: it draws from the scores of the model `nightlab learn` wrote (else from the
    builtin's order), to give the experience store decisions the builtin would not make."""
    from nightlab.agent.policy.learned import ExplorePolicy

    return ExplorePolicy.with_user_model(temperature)


def learn(store: Path | None, opts: LearnOptions, output: Path | None = None,
          progress: Callable[[int, float], None] | None = None) -> tuple[LearnResult, Path]:
    """`nightlab learn`: train the proposal scorer on an experience store (the user's by default) and save it at
    `output` (default: where the learned policy looks); (the result, where it was saved)."""
    from nightlab.agent.learn import train_on_store
    from nightlab.agent.policy.scorer import default_model_path

    res, _ = train_on_store(store, opts, progress=progress)
    out = output if output is not None else default_model_path()
    res.scorer.save(out)
    return res, out


def paying_moves(res: LearnResult, min_support: int) -> list[tuple[str, int, float, float]]:
    """The classes of move, by the best run's regime, that paid confidently in a trained model's data: (class, times,
    mean advantage, its confidence bound), most confident first — where the learned policy takes a move the builtin
    never makes (policy/learned.py)."""
    from nightlab.agent.policy.learned import paying_outcomes

    return [(key, b.n, b.mean, b.low) for key, b in paying_outcomes(res.scorer, min_support)]


def make_demo_project(dest: Path | None = None) -> Path:
    """A copy of the bundled example as a fresh git repository (`nightlab demo`), where it was made."""
    from nightlab.agent.demo import make_demo_repo

    return make_demo_repo(dest)


def hypothesis_text(e: Experiment) -> str:
    """A proposal's hypothesis as the text a user edits (see `parse_hypothesis`)."""
    return HYPOTHESIS_TEMPLATE.format(id=e.id, title=e.title, rationale=e.rationale)


def parse_hypothesis(text: str) -> tuple[str, str] | None:
    """(title, rationale) from an edited hypothesis text: comment lines dropped, the first line is the title; None
    when nothing is left."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    return lines[0].strip(), "\n".join(lines[1:]).strip()


def who_cli() -> str:
    """How the command line signs its decisions."""
    return f"cli:{os.getpid()}"


__all__ = ["PROBLEM", "Finding", "FrontDesk", "InitOptions", "InitResult", "LearnOptions", "LockHeld", "Preview",
           "Promoted", "explore_policy", "hypothesis_text", "learn", "make_demo_project", "parse_hypothesis",
           "paying_moves", "who_cli"]
