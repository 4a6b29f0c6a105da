"""The experiment loop: a persisted state machine over the experiments table.

One `tick` moves every experiment it can one step, in this order, each step written to the store before it acts:

    collect   finished jobs are read (analysis.py) and get a verdict: kept | discarded | stopped_early,
              confirmation and noise re-runs queued, a fix proposed for a failure
    watch     running jobs whose curve is clearly worse than their parent's at the same step are stopped, with the
              evidence (early_stop.py); their ends are collected like any other and the slot goes to the next run;
              at the session's deadline every job still going (here or on a scheduler) is stopped and re-queued
              (time_keeper.py)
    decide    answered approvals move proposals on: approved → queued, rejected → rejected (with the feedback)
    launch    queued experiments start on free slots under the detached job wrapper, unless they could not end
              before the deadline or would go past the compute budget (time_keeper.py); with [backend] they are
              handed to a cluster's scheduler instead (dispatch.py)
    plan      only when nothing else moved: the baseline first, then the policy's next proposal, admitted as an
              experiment (admission.py: a row, then a branch and commit) that is queued, or waits for approval in
              step mode or at a checkpoint

The loop ends when the budget is spent, the policy has nothing left, or no run fits in the time or compute left
(`done`); when nothing can progress (slots busy, a human needed) it waits for an event, or with `detach` hibernates:
records its wake conditions and returns.
Killed at any moment, it is resumed by `reconcile()`, which makes the store agree with the world again.

What the engine delegates has rooms of its own: the ledger (scores, noise floor, best), admission (whether a
proposal may become an experiment, and its row, branch and commit), dispatch (where a job runs: this machine's slots
or a cluster's scheduler, and what the scheduler says of it), the verdict (keep, confirm or discard a finished run,
from plain numbers), the decision steps (each policy decision recorded, rewarded when its run settles and handed
back to a learning policy), sessions (opening, waking, hibernating and ending a session's row, its report and
promotion request), re-runs (noise and confirmation runs on another seed), the launcher (job spec, environment,
sandbox), analysis (reading a finished run), costs (the model-cost budget), the time keeper (the deadline and the
compute budget as the session meets them: which queued runs cannot end in time, what was said of it, the jobs
stopped at the deadline, the compute approval; time_budget.py computes the numbers), live MLflow logging
(mlflow_sync.py), the policy's view, the state paths; the user's actions (approve, reject, edit, promote, stop) are
the front desk's (actions.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nightlab.agent import (
    artifacts,
    checkpoints,
    early_stop,
    mlflow_sync,
    outcome,
    plan,
    projects,
    sentinel,
    sessions,
    tbevents,
    time_budget,
    verdict,
)
from nightlab.agent.admission import Admission
from nightlab.agent.analysis import read_run
from nightlab.agent.config import ProjectConfig
from nightlab.agent.costs import CostBudget
from nightlab.agent.dispatch import Dispatch
from nightlab.agent.launcher import Launcher, python_for
from nightlab.agent.ledger import Ledger, Summary, ranked, summarize
from nightlab.agent.lock import ProjectLock
from nightlab.agent.metric_text import fmt_metric, fmt_noise
from nightlab.agent.notify import notify_human
from nightlab.agent.paths import StatePaths, state_dir
from nightlab.agent.policy.base import Abandon, Policy
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy_view import build_context, view
from nightlab.agent.proposal import PolicyContext, Proposal
from nightlab.agent.remote import RemoteJobs
from nightlab.agent.report import ReportFiles
from nightlab.agent.reruns import Reruns
from nightlab.agent.seeding import SeedPlan
from nightlab.agent.states import (
    QUIT,
    ApprovalKind,
    ApprovalState,
    Decision,
    EventKind,
    JobState,
    Kind,
    Mode,
    Pricing,
    RunResult,
    SessionState,
    Status,
)
from nightlab.agent.steps import DecisionSteps
from nightlab.agent.store import Approval, Experiment, Session, Store
from nightlab.agent.time_keeper import TimeKeeper
from nightlab.agent.workspace import Workspace
from nightlab.errors import NightlabError
from nightlab.sandbox import lease, runner
from nightlab.sandbox.watch import Waker, signal_project

log = logging.getLogger(__name__)
BASELINE = Kind.BASELINE
RERUN = Kind.RERUN


Approver = Callable[["Engine", Approval, Experiment], Decision | None]
EventSink = Callable[[str, str, dict[str, Any]], None]


@dataclass
class EngineOptions:
    mode: Mode = Mode.STEP
    budget: int | None = None  # training runs this invocation may start; None = config default
    detach: bool = False  # hibernate (return) instead of waiting when nothing can progress
    unsafe_no_sandbox: bool = False
    wake: bool = False  # continuing a hibernating session rather than starting one
    poll_s: float = 1.0
    who: str = "console"
    deadline: float | None = None  # epoch seconds the session must end by (`run --hours` / `--until`)


def open_store(root: Path) -> Store:
    return Store(StatePaths.of(root).db)


class Engine:
    def __init__(self, root: Path, cfg: ProjectConfig, *, options: EngineOptions | None = None,
                 policy: Policy | None = None, store: Store | None = None, workspace: Workspace | None = None,
                 approver: Approver | None = None, on_event: EventSink | None = None) -> None:
        self.root = Path(root).resolve()
        self.cfg = cfg
        self.options = options or EngineOptions()
        self.paths = StatePaths.of(self.root)
        self.ws = workspace or Workspace(self.root)
        self.ws.ensure_state_dir()
        self.store = store or open_store(self.root)
        self.ledger = Ledger.of(self.store, cfg)
        self.keeper = artifacts.Keeper(self.paths, self.ledger, cfg, self.emit)
        self.costs = CostBudget(self.store, cfg)
        self.early_stop = early_stop.EarlyStopper(self.store, cfg)
        self.plan = plan.PlanFollower(self.store, lambda kind, message: self.emit(kind, message))
        self.clock = time_budget.TimeBudget(self.store, self.options.deadline, cfg.autonomy.max_cpu_hours,
                                            cfg.autonomy.max_gpu_hours, cfg.slots.threads_per_job,
                                            ask_over_budget=cfg.autonomy.ask_over_budget)
        self._pricer = BuiltinPolicy()  # prices other policies' code edits with the builtin's cost model
        self.launcher = Launcher(self.root, cfg, self.ws, unsafe_no_sandbox=self.options.unsafe_no_sandbox)
        self._policy = policy
        self.approver = approver
        self.on_event = on_event
        self.lock = ProjectLock(self.paths.dir)
        self.session: Session | None = None
        # where jobs run: this machine's slots (leased machine-wide) or a cluster's scheduler ([backend])
        self.dispatch = Dispatch(self.root, cfg, self.store, self.launcher, self.paths, self.lock.path,
                                 self.options.poll_s, lambda: self.sid, self.command_for, self.emit)
        # what the engine does with the deadline and the compute budget: runs that cannot end in time, said once
        self.time = TimeKeeper(self.store, self.clock, lambda: self.sid, self.emit, lambda m: self._notify(m),
                               lambda job, reason: self.dispatch.stop(job, reason))
        # the compute budget counts what runs get: a next run the GPUs it will ask the slots (or the scheduler) for
        self.clock.remote_cpus, self.clock.remote_gpus = cfg.backend.cpus_per_job, cfg.backend.gpus_per_job
        if self.remote is None:
            self.clock.gpus_per_job = self.pool.gpus_per_job(cfg.slots.gpus_per_job)
        else:
            self.clock.cpus_per_job, self.clock.gpus_per_job = cfg.backend.cpus_per_job, cfg.backend.gpus_per_job
        self._stop = False  # stop asking and looping: stop(), or the approver's "quit"
        self._handover = False  # stop() asked for it: hibernate rather than leave the session as it was
        self._exhausted = False
        self._waker: Waker | None = None
        self.report_files: ReportFiles | None = None  # the report written when the session ended
        self.reruns = Reruns(self.store, self.ws, cfg, self.ledger, lambda: self.sid, self.budget_left, self.emit)
        self.steps = DecisionSteps(self.store, self.root, cfg, self.ledger, lambda: self.sid, lambda: self.policy,
                                   self.emit)
        self.admission = Admission(self.store, self.ws, cfg, self.ledger, lambda: self.sid, lambda: self.policy.name,
                                   self.plan.phase_of, self.emit, self._exhaust)

    # ------------------------------------------------------------------------------------------- plumbing
    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = make_policy(self.cfg, self.root)
        return self._policy

    @property
    def pool(self) -> lease.MachinePool:
        """This machine's slots (dispatch.py); a test or a bench may hand the engine a pool of its own."""
        return self.dispatch.pool

    @pool.setter
    def pool(self, pool: lease.MachinePool) -> None:
        self.dispatch.pool = pool

    @property
    def remote(self) -> RemoteJobs | None:
        """The cluster's scheduler, with [backend]; None: jobs run on this machine's slots."""
        return self.dispatch.remote

    @property
    def sid(self) -> int:
        assert self.session is not None
        return self.session.id

    def emit(self, kind: EventKind, message: str, exp_id: int | None = None, **data: Any) -> None:
        self.store.event(kind, message, session_id=self.session.id if self.session else None,
                         experiment_id=exp_id, data=data)
        if self.on_event is not None:
            self.on_event(kind, message, {"experiment_id": exp_id, **data})

    def _exhaust(self) -> None:
        """The session's planning is over: the policy has nothing left, or its proposals keep being refused."""
        self._exhausted = True

    @property
    def seeded(self) -> bool:
        """Whether re-runs can vary the seed or still measure noise (reruns.py)."""
        return self.reruns.seeded

    def seed_plan(self, e: Experiment | None = None) -> SeedPlan:
        return self.reruns.seed_plan(e)

    def command_for(self, e: Experiment) -> str:
        return self.reruns.command_for(e)

    def budget_left(self) -> int:
        s = self.store.session(self.sid)
        return max(0, s.budget - s.runs_started)

    def check_sandbox(self) -> str:
        """The confinement layer jobs will get; one clear error before anything runs if it is not available."""
        return self.launcher.check_sandbox()

    # ------------------------------------------------------------------------------------------- entry points
    def run(self) -> Summary:
        """Run until the budget is spent or the policy has nothing left (or hibernate, with detach)."""
        self.layer = self.check_sandbox()
        if self.cfg.metric.source == "tensorboard":
            tbevents.require()
        self.lock.acquire("wake" if self.options.wake else "engine")
        try:
            self.session = self._open_session()
            projects.register(self.root)  # listed by `nightlab projects` and the TUI's overview
            self._waker = Waker(self.paths.runs, self.paths.signal)
            self.policy.prewarm()  # e.g. the ~3 s litellm import overlaps the baseline run
            self.steps.replay()
            self.reconcile()
            try:
                self._loop()
            except KeyboardInterrupt:
                self._interrupt()
                raise
            if self._handover and self.store.session(self.sid).state != SessionState.DONE:
                self._hibernate(self.wake_conditions())  # stop() from a front-end: the running jobs wake it
            return self.summary()
        finally:
            if self._waker is not None:
                self._waker.close()
            self.lock.release()
            self._wake_if_missed()

    def _wake_if_missed(self) -> None:
        if self.session is not None:
            sessions.wake_if_missed(self.store, self.sid, self.launcher.wake_argv())

    def settle(self, session: Session) -> None:
        """For a session that is done: reconcile and analyse jobs that ended since, without continuing it."""
        self.lock.acquire("wake")
        try:
            self.session = session
            self.reconcile()
            self._collect()
        finally:
            self.lock.release()

    def _open_session(self) -> Session:
        session, self.clock.deadline = sessions.open_session(
            self.store, self.root, self.ws, self.cfg, wake=self.options.wake, mode=self.options.mode,
            budget=self.options.budget, unsafe=self.options.unsafe_no_sandbox,
            deadline=self.clock.deadline if self.options.wake else self.options.deadline)
        return session

    def _loop(self) -> None:
        while not self._stop:
            progressed = self.tick()
            if self._stop:
                break
            if self._finished():
                self._finish()
                return
            if progressed:
                continue
            conditions = self.wake_conditions()
            if self.options.detach and not self.dispatch.backend_wait and not self.dispatch.unconfirmed:
                self._hibernate(conditions)
                return
            waiting_on_human = bool(conditions) and all(c.startswith("approval") for c in conditions)
            self.store.update_session(self.sid, state=SessionState.WAITING if waiting_on_human else SessionState.ACTIVE,
                                      wake_conditions=conditions)
            assert self._waker is not None
            self._waker.wait(self.options.poll_s)

    def tick(self) -> bool:
        """One round of progress; True if anything changed."""
        self.session = self.store.session(self.sid)
        self.options.mode = self.session.mode  # the mode may be toggled from the TUI or another process
        progressed = self._collect()
        self._watch()
        progressed |= self._process_decisions()
        progressed |= self._launch_queued()
        if not progressed:
            progressed |= self._plan()
        return progressed

    def poke(self) -> None:
        """Look again now rather than at the next poll (a front-end on another thread has something for the loop)."""
        if self._waker is not None:
            self._waker.poke()

    def stop(self) -> None:
        """End the loop after its current step (from another thread: the TUI quitting). Running jobs go on; the
        session hibernates and their ends wake it."""
        self._stop = True
        self._handover = True
        if self._waker is not None:
            self._waker.poke()

    def _finished(self) -> bool:
        if self.clock.active and not self.store.open_jobs() and self.time.no_time_left():
            # what is still queued or proposed waits for the next session, unless a person may let it go over
            # the compute budget ([autonomy] ask_over_budget): then it waits for their answer
            return self.time.ask_over_budget() is None
        if self.time.holding_slots(self.store.active_experiments()):
            return False  # (a queued run that cannot end in time waits for the next session)
        if self.store.open_jobs():
            return False
        return self.budget_left() <= 0 or self._exhausted

    def wake_conditions(self) -> list[str]:
        conds = [f"job of experiment #{j.experiment_id} ends" + (f" ({j.where}, {j.sched_state or 'submitted'})"
                                                                 if j.remote else "")
                 for j in self.store.open_jobs()]
        conds += [f"approval {a.id} ({a.kind} #{a.experiment_id}) decided"
                  for a in self.store.approvals(ApprovalState.PENDING)]
        if self.dispatch.slot_wait and self.store.experiments_in(Status.QUEUED):
            conds.append(f"{lease.SLOT_WAIT} ({self.dispatch.slot_wait})")
        return conds

    # ------------------------------------------------------------------------------------------- reconcile
    def reconcile(self) -> None:
        """Make the store agree with the world after any crash: jobs, half-made experiments, stray branches."""
        # jobs: finished ones are analysed by _collect; those whose process is gone without a status are lost
        for job in self.store.open_jobs():
            status = runner.read_status(job.run_dir, job.wrapper)
            if status is not None:
                continue
            if job.remote:
                if self.dispatch.never_submitted(job):
                    self._mark_lost(job.id, job.experiment_id, "never reached the scheduler")
                continue
            pids = runner.read_pids(job.run_dir)
            if pids is None:
                # the wrapper may be starting right now; give it a moment before calling the job lost
                deadline = time.monotonic() + 2.0
                while pids is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    pids = runner.read_pids(job.run_dir)
                if pids is not None:
                    self.store.update_job(job.id, pid=pids["pid"], pid_start=pids["start"],
                                          wrapper_pid=pids["wrapper_pid"], wrapper_start=pids["wrapper_start"],
                                          state=JobState.RUNNING)
            wrapper = job.wrapper or (None if pids is None else (int(pids["wrapper_pid"]), pids["wrapper_start"]))
            if runner.read_status(job.run_dir, wrapper) is None and not runner.wrapper_alive(job.run_dir, wrapper):
                self._mark_lost(job.id, job.experiment_id, "the job's process is gone without a status")
            elif job.slot:
                self.pool.mark_busy(job.slot, run=self.launcher.lease_run_of(job.run_dir))
        # experiments marked running without an open job: lost between the row and the launch
        open_exp = {j.experiment_id for j in self.store.open_jobs()}
        for e in self.store.experiments_in(Status.RUNNING):
            if e.id not in open_exp:
                self._requeue_or_lose(e, "launch interrupted")
        # finished runs whose verdict was interrupted: complete it (every step of a verdict is idempotent)
        for e in self.store.unsettled_results():
            self._verdict(e)
            self.store.update_experiment(e.id, settled=1)
            self.steps.reward(e.id)
        # experiments proposed but never materialised: complete them (the row holds the edits)
        for e in self.store.unmaterialised():
            self.admission.materialise(e)
        # branches this store does not know (an earlier store's, say) are never deleted: every experiment's row is
        # written before its branch, so a branch without a row is not a half-made experiment of ours
        # worktrees of settled experiments: prune
        if self.ws.worktrees.exists():
            active = {e.id for e in self.store.active_experiments()}
            for d in self.ws.worktrees.iterdir():
                if d.name.isdigit() and int(d.name) not in active:
                    self._prune(int(d.name))

    def _mark_lost(self, job_id: int, exp_id: int, why: str) -> None:
        self.store.update_job(job_id, state=JobState.LOST, ended=time.time())
        e = self.store.experiment(exp_id)
        self._requeue_or_lose(e, why)

    def _requeue_or_lose(self, e: Experiment, why: str) -> None:
        if e.attempts < 2:
            self.store.update_experiment(e.id, status=Status.QUEUED, error=f"lost ({why}); re-queued")
            self.emit(EventKind.LOST, f"#{e.id} lost ({why}); re-queued once", e.id)
        else:
            self.store.update_experiment(e.id, status=Status.LOST, run_result=RunResult.LOST, error=f"lost ({why})")
            self.emit(EventKind.LOST, f"#{e.id} lost again ({why}); giving up on it", e.id)

    # ------------------------------------------------------------------------------------------- 1. collect
    def _collect(self) -> bool:
        progressed = False
        open_jobs = self.store.open_jobs()
        scheduler = self.dispatch.follow(open_jobs)
        self.dispatch.unconfirmed.clear()
        for job in open_jobs:
            status = runner.read_status(job.run_dir, job.wrapper)
            if job.remote:
                if status is not None and not RemoteJobs.believes(scheduler.get(job.id)):
                    if RemoteJobs.status_fresh(job):  # its wrapper is about to exit: ask again soon
                        self.dispatch.unconfirmed.add(job.id)
                    continue
                ended = self.dispatch.ending(job, status, scheduler)
                if ended is None and status is None:
                    continue
                if ended is not None and ended.retry:
                    # the node went down or the job was pre-empted: this attempt never finished by itself
                    self.store.update_job(job.id, state=JobState.ENDED, ended=time.time())
                    self._requeue_or_lose(self.store.experiment(job.experiment_id), ended.why)
                    progressed = True
                    continue
                if ended is not None:
                    status = ended.status
            if status is None:
                if job.state == JobState.RUNNING and not runner.wrapper_alive(job.run_dir, job.wrapper) and \
                        runner.read_status(job.run_dir, job.wrapper) is None:
                    self._mark_lost(job.id, job.experiment_id, "the job wrapper died")
                    if job.slot:
                        self.pool.release(job.slot)
                    progressed = True
                continue
            # order matters for crash safety: results first (idempotent), then the job is closed, then the verdict
            # (completed by reconcile if we die before it: see `settled`)
            analysed = self._record_run(self.store.experiment(job.experiment_id), Path(job.run_dir), status)
            began = job.run_started or (status.started_at if job.remote and status.pid else None)
            self.store.update_job(job.id, state=JobState.ENDED, exit_code=status.exit_code, ended=status.ended_at,
                                  run_started=began)
            if job.slot:
                self.pool.release(job.slot)
            if analysed is not None:
                self._verdict(analysed)
                self.store.update_experiment(analysed.id, settled=1)
                self.steps.reward(analysed.id)
                self._prune(analysed.id)
            progressed = True
        if progressed:
            mlflow_sync.log_live(self.root, self.cfg, self.emit)
        return progressed

    def _prune(self, exp_id: int) -> None:
        """Remove a settled experiment's worktree, keeping first what a kept run wrote there (its checkpoints)."""
        self.keeper.save(exp_id, self.ws.worktree_path(exp_id))
        self.ws.prune(exp_id)
        self.keeper.tidy()

    def _record_run(self, e: Experiment, run_dir: Path, status: runner.JobStatus) -> Experiment | None:
        """Record a finished run's results (metric, curves, failure class, stage). None when it goes back to the
        queue (interrupted by Ctrl+C); else the experiment, ready for its verdict."""
        reading = read_run(self.cfg, self.ws.worktree_path(e.id), run_dir, status)
        if reading.note:
            self.emit(EventKind.NOTE, f"#{e.id}: {reading.note}", e.id)
        if reading.interrupted:
            # Ctrl+C: the run did not finish through no fault of its own; it runs again on resume
            self.store.update_experiment(e.id, status=Status.QUEUED, error="interrupted; re-queued", **{
                k: v for k, v in reading.changes.items() if k in ("log_tail", "seconds")})
            return None
        self.store.update_experiment(e.id, status=reading.result, settled=0, **reading.changes)
        e = self.store.experiment(e.id)
        if reading.ok:
            self.emit(EventKind.FINISHED,
                      f"#{e.id} finished: {self.cfg.metric.name} = {fmt_metric(reading.metric)} "
                      f"({status.seconds:.1f}s)", e.id, metric=reading.metric)  # 5.8s: never wraps apart
        else:
            self.emit(EventKind.FAILED, f"#{e.id} {reading.result}: {reading.diagnosis}", e.id,
                      failure_class=reading.changes["failure_class"])
        return e

    # ------------------------------------------------------------------------------------------- verdicts
    def _verdict(self, e: Experiment) -> None:
        """Decide kept / discarded for a finished run, queue confirmations, noise runs and fixes."""
        if e.kind == BASELINE:
            if e.run_result == RunResult.SUCCEEDED:
                self.store.update_experiment(e.id, status=Status.KEPT)
                self.reruns.queue_noise_runs(e)
            else:
                self._try_fix(e)
            return
        if e.kind == RERUN:
            target = self.store.experiment(e.rerun_of) if e.rerun_of else None
            self.store.update_experiment(e.id, status=Status.KEPT if e.run_result == RunResult.SUCCEEDED
                                       else Status.DISCARDED)
            if target is None:
                return
            if target.kind == BASELINE:
                if not [x for x in self.store.active_experiments() if x.rerun_of == target.id]:
                    noise = self.ledger.noise_floor()
                    note = verdict.noise_note(self.ledger.deterministic(), self.seed_plan().varies,
                                              self.seed_plan().how)
                    self.emit(EventKind.NOISE, f"noise floor from {len(self.ledger.scores().get(target.id, []))} "
                                               f"baseline runs: {fmt_noise(noise)}{note}", target.id, noise_floor=noise)
                    self.store.update_session(self.sid, noise_floor=noise)
                return
            if target.status in (Status.SUCCEEDED, Status.UNCONFIRMED):
                self._judge(target, confirmed=True)  # awaiting its confirmation (or kept on one seed at budget end)
                target = self.store.experiment(target.id)
            if e.run_result == RunResult.SUCCEEDED and target.status in (Status.KEPT, Status.DISCARDED):
                # a confirmation shares its experiment's verdict: a "kept" re-run of a discarded change would mislead
                self.store.update_experiment(e.id, status=target.status)
            return
        if e.run_result == RunResult.STOPPED_EARLY:  # a regression seen early: no fix to try, nothing to confirm
            self.store.update_experiment(e.id, status=Status.STOPPED_EARLY)
            return
        if e.run_result != RunResult.SUCCEEDED:
            self.store.update_experiment(e.id, status=e.run_result or Status.FAILED)
            self._try_fix(e)
            return
        parent = self.store.find_experiment(e.parent_id) if e.parent_id is not None else None
        if parent is not None and parent.seed == e.seed and outcome.same_output(parent, e):
            note = (f"no effect: ran exactly like #{parent.id} ({self.cfg.metric.name} {fmt_metric(e.metric)}, "
                    "the same curve and output); the change did not reach the program")
            self.store.update_experiment(e.id, status=Status.NO_EFFECT, error=note)
            self.emit(EventKind.NO_EFFECT, f"#{e.id} {note}", e.id)
            return
        self._judge(e, confirmed=False)

    def _judge(self, e: Experiment, confirmed: bool) -> None:
        """Keep, confirm or discard a finished run against the best (the numbers are verdict.py's to weigh)."""
        best_id, best_val = self.ledger.best(exclude=e.id)
        mine = self.ledger.score(e.id)
        assert mine is not None
        by_seed = self.ledger.runs_by_seed()
        ev = verdict.Evidence(mine=mine, best_id=best_id, best=best_val, floor=self.ledger.noise_floor(), seed=e.seed,
                              mine_by_seed=by_seed.get(e.id, {}),
                              best_by_seed=by_seed.get(best_id, {}) if best_id is not None else {})
        v = verdict.judge(ev, self.ledger.goal, self.cfg.search.min_improvement, confirmed=confirmed,
                          confirming=None if confirmed else self._confirming(e))
        if v.call is verdict.Call.DISCARD:
            self.store.update_experiment(e.id, status=Status.DISCARDED, error=v.note)
            self.emit(EventKind.DISCARDED, f"#{e.id} discarded: {v.note}", e.id)
        elif v.call is verdict.Call.CONFIRM:
            self.reruns.queue_rerun(e, reason="confirm")
            self.emit(EventKind.CONFIRM, f"#{e.id} {v.note}; re-running with another seed to confirm", e.id)
        elif v.call in (verdict.Call.KEEP, verdict.Call.KEEP_UNCONFIRMED):
            self._keep(e, v.note, unconfirmed=v.call is verdict.Call.KEEP_UNCONFIRMED)
        # WAIT: its confirmation is already queued or running

    def _confirming(self, e: Experiment) -> verdict.Confirming:
        """What re-running first run `e` to confirm it would take, read only where the verdict would use it."""
        wanted = self.cfg.search.confirm
        seeded = wanted and self.seeded
        # runs already queued will spend budget first (one may be waiting for a slot another project holds)
        room = seeded and self.budget_left() - len(
            [x for x in self.store.experiments_in(Status.QUEUED) if x.attempts == 0]) > 0
        why_not = verdict.no_confirm_reason(self.ledger.deterministic(), self.seed_plan().how) \
            if wanted and not seeded else ""
        return verdict.Confirming(wanted=wanted, seeded=seeded, already=bool(self.store.reruns_of(e.id)), room=room,
                                  why_not=why_not)

    def _keep(self, e: Experiment, why: str, unconfirmed: bool = False) -> None:
        self.store.update_experiment(e.id, status=Status.UNCONFIRMED if unconfirmed else Status.KEPT, error=None)
        self.emit(EventKind.KEPT, f"#{e.id} is the new best: {why}", e.id)
        if not unconfirmed:  # a best on one seed may still lose its confirmation: the earlier request waits
            sessions.withdraw_superseded_promotes(self.store, e.id, self.emit)

    def _queue_pending_confirmation(self) -> bool:
        return self.reruns.queue_pending_confirmation()

    def _try_fix(self, e: Experiment) -> None:
        if self.store.proposals_on(e.id):
            return  # a fix was already proposed (we are completing an interrupted verdict)
        if e.depth >= self.cfg.search.debug_depth:
            self.emit(EventKind.ABANDON, f"#{e.id}: {e.depth} fix attempts already; abandoning this branch", e.id)
            return
        if self.budget_left() <= 0 or not self.costs.may_call(self.sid, self.emit, self._notify, self._exhaust):
            return
        ctx = self.context()
        try:
            proposal = self.policy.fix(ctx, view(e))
            self.costs.account(self.sid, self.policy)
        except Abandon as why:  # no code change can work: the branch stops with the policy's reason
            self.costs.account(self.sid, self.policy)
            self.store.update_experiment(e.id, error=str(why))
            self.emit(EventKind.ABANDON, f"#{e.id}: {why}", e.id, reason=str(why))
            return
        except Exception as err:  # a policy failure is a result to record, not a crash
            self.costs.account(self.sid, self.policy)
            self.emit(EventKind.POLICY_ERROR, f"policy could not propose a fix for #{e.id}: {sessions.one_line(err)}",
                      e.id)
            return
        if proposal is None:
            self.emit(EventKind.ABANDON, f"#{e.id}: no fix to try; abandoning this branch", e.id)
            return
        proposal.parent_id = e.id
        proposal.kind = proposal.kind or Kind.FIX
        self._price(ctx, proposal)
        self.steps.record(ctx, self.admit(proposal, depth=e.depth + 1), view(e))

    # ------------------------------------------------------------------------------------------- 2. watch
    def _watch(self) -> None:
        """Early stopping (early_stop.py): a running job whose curve is clearly worse than its parent's at the same
        step is stopped. The evidence goes into its run dir first, so its end is read as `stopped_early` whenever
        it is collected, by this engine or, after a crash, by the next."""
        if self.clock.overdue():
            self.time.stop_at_deadline()
            return
        if not self.early_stop.enabled:
            return
        for job in self.store.open_jobs():
            if job.state != JobState.RUNNING:
                continue
            try:
                verdict = self.early_stop.check(job, self.ws.worktree_path(job.experiment_id))
            except (OSError, NightlabError) as err:  # an unreadable curve stops nothing
                self.emit(EventKind.NOTE, f"#{job.experiment_id}: early stopping could not read the curve: {err}",
                          job.experiment_id)
                continue
            if verdict is None or not verdict.stop:
                continue
            early_stop.write_evidence(Path(job.run_dir), verdict)
            self.early_stop.stopping(job.id)
            if self.dispatch.stop(job, early_stop.STOP_REASON):
                self.emit(EventKind.STOPPED_EARLY, f"#{job.experiment_id} stopped early: {verdict.evidence}",
                          job.experiment_id, **verdict.data())

    # ------------------------------------------------------------------------------------------- 3. decide
    def _ask(self, appr: Approval) -> bool:
        """Ask the approver (a front-end) about a pending approval; True when it answered now. An approver that asks
        in the background (the console's) answers None until its person has: the engine goes on with everything else
        meanwhile, and the answer, recorded through the front desk, is read on a later tick like anyone's."""
        if self.approver is None:
            return False
        e = self.store.experiment(appr.experiment_id) if appr.experiment_id else None
        if e is None:
            return False
        decision = self.approver(self, appr, e)
        if decision is None:
            return False
        if decision.state == QUIT:
            self._stop = True
            return False
        self.store.decide(appr.id, ApprovalState(decision.state), self.options.who, decision.feedback)
        self._process_decisions()
        return True

    def _process_decisions(self) -> bool:
        """Act on approvals decided by anyone (this console, the TUI, `nightlab approve` from another shell)."""
        progressed = False
        for e in self.store.experiments_in(Status.PROPOSED):
            decided = self.store.approvals_of(kind=ApprovalKind.HYPOTHESIS, experiment_id=e.id)
            if not decided:
                # no question filed: killed between the proposal's row and its approval request (admit files one
                # in step mode and at a checkpoint), or nobody was there to ask. It is filed now, whether or not
                # anyone here can answer it: a woken step-mode session would hibernate with nothing to wake it, and
                # an autonomous one would run a checkpoint's experiment without asking
                stop = checkpoints.reason(self.cfg.autonomy, e.kind, e.edits, self.clock.predict(e),
                                          self.plan.unforeseen(e.phase))
                if self.options.mode == Mode.AUTONOMOUS and stop is None:
                    self.store.update_experiment(e.id, status=Status.QUEUED)
                    progressed = True
                elif e.commit_sha:
                    self._file_question(e, stop)
                    progressed = True
                continue
            last = decided[-1]
            if last.state == ApprovalState.APPROVED:
                self.store.update_experiment(e.id, status=Status.QUEUED)
                self.emit(EventKind.APPROVED, f"#{e.id} approved by {last.who}", e.id)
                progressed = True
            elif last.state == ApprovalState.REJECTED:
                self.store.update_experiment(e.id, status=Status.REJECTED, diagnosis=last.feedback,
                                             error=f"rejected: {last.feedback or ''}".strip())
                self.ws.prune(e.id)
                self.emit(EventKind.REJECTED, f"#{e.id} rejected by {last.who}: {last.feedback or 'no reason given'}",
                          e.id)
                progressed = True
            elif last.state == ApprovalState.PENDING and self.options.mode == Mode.AUTONOMOUS:
                if last.payload.get("checkpoint"):
                    continue  # a checkpoint waits for a person, in any mode
                self.store.decide(last.id, ApprovalState.APPROVED, "autonomous mode")
                self.store.update_experiment(e.id, status=Status.QUEUED)
                progressed = True
            elif last.state == ApprovalState.PENDING and self.approver is not None and not self._stop:
                progressed |= self._ask(last)
        return progressed

    def _notify(self, message: str) -> None:
        problem = notify_human(self.cfg.notify.command, message)
        if problem:
            self.emit(EventKind.NOTIFY_ERROR, problem)

    # ------------------------------------------------------------------------------------------- 4. launch
    def _launch_queued(self) -> bool:
        """Queued experiments start where jobs run (dispatch.py): on this machine's free slots, or handed to the
        cluster's scheduler — either only if they can end before the deadline and within the compute budget (a
        scheduler's queue counted as the waits measured on its earlier jobs: time_budget.py)."""
        self.time.new_launch_pass()
        if self.remote is not None:  # a run that cannot end in time is not handed to the scheduler either
            return self.dispatch.submit_queued(lambda e: self._may_start(e) and self.time.fits(e))
        progressed = False
        for e in self.store.experiments_in(Status.QUEUED):
            if not self._may_start(e) or not self.time.fits(e):
                continue
            if not self.dispatch.start(e):  # no slot free (another project may hold it): it waits
                break
            progressed = True
        return progressed

    def _may_start(self, e: Experiment) -> bool:
        """Whether a queued experiment may start now: a re-try of a lost job spends no budget; none after stop()."""
        return not ((self.budget_left() <= 0 and e.attempts == 0) or self._stop)

    # ------------------------------------------------------------------------------------------- 5. plan
    def _plan(self) -> bool:
        if self.budget_left() <= 0 or self._stop:
            return False
        if self.clock.active and self.time.no_time_left():
            return False
        # a queued run that cannot end in time holds no slot: cheaper work may still fit
        active = self.time.holding_slots(self.store.active_experiments())
        base = self.ledger.baseline()
        if base is None:
            self.admission.baseline()
            return True
        # a proposal waiting for a person holds no slot: the work approved goes on beside it, within the slots; step
        # mode asks one question at a time, but proposes the next run while the approved ones fill the slots
        if self.options.mode == Mode.STEP and any(x.status == Status.PROPOSED for x in active):
            return False
        if len([x for x in active if x.status != Status.PROPOSED]) >= max(1, self.dispatch.parallel()):
            return False
        if base.status in (Status.QUEUED, Status.RUNNING) or any(x.kind == RERUN for x in active):
            return False
        best_id, _ = self.ledger.best()
        if best_id is None and active:
            # nothing works yet and a fix is in flight: wait for it before proposing anything else
            return False
        planned = len([x for x in active if x.status in (Status.QUEUED, Status.APPROVED, Status.PROPOSED)])
        if self.budget_left() - planned <= 0:
            return False
        if self._queue_pending_confirmation():
            return True
        if self._exhausted or not self.costs.may_call(self.sid, self.emit, self._notify, self._exhaust):
            return False
        ctx = self.context()
        if ctx.best_id is not None:  # an approved plan: its current phase only (plan.py)
            ctx = replace(ctx, phases=self.plan.phases())
        try:
            proposal = self.policy.propose(ctx)
            self.costs.account(self.sid, self.policy)
        except Exception as err:  # a policy failure is a result, not a crash
            self.costs.account(self.sid, self.policy)
            self.emit(EventKind.POLICY_ERROR, f"policy failed to propose: {sessions.one_line(err)}")
            self.admission.count_refusal()
            return True
        unfit = self.time.say_skipped(self.policy.unfit, ctx.time_left_s)
        if proposal is None and unfit and ctx.phases:  # nothing in the plan's phase fits: the next one, this session
            self.plan.nothing_fits(ctx.phases[0])
            return True
        if proposal is None and unfit:  # candidates are left, none fits: the session ends once nothing runs
            self.clock.floor = min(unfit)
            return False
        if proposal is None and ctx.phases:  # nothing left in the plan's phase: the next one (plan.py)
            self.plan.nothing_in(ctx.phases[0])
            return True
        if proposal is None:
            if not active:
                self._exhausted = True
                self.emit(EventKind.EXHAUSTED, "the policy has nothing left to try")
            return False
        self.clock.floor = None
        self._price(ctx, proposal)
        self.steps.record(ctx, self.admit(proposal), None)
        return True

    def _price(self, ctx: PolicyContext, proposal: Proposal) -> None:
        """A proposal that changes code and says nothing of its run time (a language model's edit, a script's, a
        repair) gets its own prediction: its parent's measured time scaled by the model's cost read from the code
        after the edit over before it (the builtin policy's cost model); where the structure cannot be read it is
        marked as costed at its parent's time (`Pricing.PARENT`)."""
        if proposal.predicted_s is not None or proposal.priced is not None or not proposal.edits \
                or proposal.kind == RERUN:
            return
        parent = proposal.parent_id if proposal.parent_id is not None else (ctx.best_id or ctx.baseline_id)
        pricer = self.policy if isinstance(self.policy, BuiltinPolicy) else self._pricer
        try:
            proposal.predicted_s, proposal.priced = pricer.predict_edits(ctx, parent, proposal.edits)
        except Exception as err:  # a prediction is an aid: without one the parent's time stands, as said
            log.debug("no run-time prediction for %r: %s", proposal.title, err)
            proposal.priced = Pricing.PARENT

    def admit(self, proposal: Proposal, depth: int = 0) -> Experiment | None:
        """A proposal becomes an experiment if admission.py lets it (a row, then a branch and commit); then it is
        queued, or waits at a checkpoint (autonomous) or for a person's approval (step mode)."""
        e = self.admission.admit(proposal, depth)
        if e is None:
            return None
        # with how its run time was predicted: measured vs predicted stays visible in the events
        self.emit(EventKind.PROPOSED, f"#{e.id} {e.title}", e.id, rationale=e.rationale,
                  predicted_s=e.predicted_s, priced=str(e.priced) if e.priced else None)
        self.time.count_unfit(e)
        stop = checkpoints.reason(self.cfg.autonomy, e.kind, e.edits, proposal.predicted_s or self.clock.predict(e),
                                  self.plan.unforeseen(e.phase))
        if stop is not None and self.options.mode != Mode.STEP:  # it waits for a person; all else goes on
            self._file_question(e, stop)
        elif self.options.mode == Mode.STEP and e.kind not in (BASELINE, RERUN):
            # step mode asks about every proposal; one at a checkpoint (a phase the plan did not foresee, a long
            # run, a structural change) says why, as the autonomous mode's does
            self._file_question(e, stop)
        else:
            self.store.update_experiment(e.id, status=Status.QUEUED)
        return self.store.experiment(e.id)

    def _file_question(self, e: Experiment, stop: tuple[checkpoints.Checkpoint, str] | None) -> None:
        """A proposal's question to a person: the approval row (at a checkpoint with which one and why), the
        checkpoint's event, a notification, and in step mode the console's question. `admit` files it as a proposal
        is made, `_process_decisions` for a proposal whose question a crash left unfiled — the same way, so a woken
        session asks exactly what the uninterrupted one would have."""
        payload: dict[str, Any] = {"title": e.title}
        if stop is not None:
            payload |= {"checkpoint": str(stop[0]), "reason": stop[1]}
        appr = self.store.add_approval(ApprovalKind.HYPOTHESIS, payload, self.sid, e.id)
        if stop is not None:
            self.emit(EventKind.CHECKPOINT, f"#{e.id} waits for your approval: {stop[1]}", e.id)
        why = f" ({stop[1]})" if stop is not None else ""
        self._notify(f"nightlab: experiment #{e.id} waits for your approval{why}: {e.title}")
        if self.options.mode == Mode.STEP:
            self._ask(appr)

    def context(self) -> PolicyContext:
        """The project as the policy sees it now (policy_view.py)."""
        return replace(build_context(self.root, self.cfg, self.ws, self.ledger, self.budget_left(),
                                     self.pool.gpus_per_job(self.cfg.slots.gpus_per_job)),
                       time_left_s=self.clock.run_seconds_left(self.sid))

    # ------------------------------------------------------------------------------------------- endings
    def _hibernate(self, conditions: list[str]) -> None:
        sessions.hibernate(self.store, self.sid, conditions, self.emit)
        every = sentinel.interval(self.cfg, self.store.open_jobs(), remote=self.remote is not None,
                                  deadline=self.clock.deadline)
        if every is not None:  # wakes us if a node dies with its wrapper, a run is to be stopped early, at the deadline
            sentinel.start(self.root, every)
        mlflow_sync.log_live(self.root, self.cfg, self.emit)

    def _finish(self) -> None:
        self.pool.stop_waiting()
        self.report_files = sessions.finish(self.store, self.root, self.cfg, self.ledger, self.sid, self.emit,
                                            self._notify)
        mlflow_sync.log_live(self.root, self.cfg, self.emit)

    def _interrupt(self) -> None:
        """Ctrl+C in the foreground: stop our running jobs, record them for resumption, keep everything else.
        Jobs on a cluster's scheduler go on: they wake the engine when they end (or `nightlab wake` collects them)."""
        if self.remote is not None:
            if self.session is not None:
                self.store.update_session(self.sid, state=SessionState.HIBERNATING,
                                          wake_conditions=self.wake_conditions(), pid=None)
            self.emit(EventKind.INTERRUPTED,
                      "interrupted: the jobs on the scheduler go on; they wake nightlab when they end")
            return
        for job in self.store.open_jobs():
            runner.stop(job.run_dir, "interrupted", job.wrapper)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(runner.wrapper_alive(j.run_dir, j.wrapper)
                                                 for j in self.store.open_jobs()):
            time.sleep(0.1)
        self._collect()
        for e in self.store.experiments_in(Status.RUNNING):
            self.store.update_experiment(e.id, status=Status.QUEUED, error="interrupted; re-queued")
        if self.session is not None:
            self.store.update_session(self.sid, state=SessionState.HIBERNATING, wake_conditions=["nightlab run"],
                                      pid=None)
        self.emit(EventKind.INTERRUPTED, "interrupted: running jobs stopped and re-queued; `nightlab run` resumes")

    def summary(self) -> Summary:
        return self.ledger.summary(self.store.session(self.sid))


# ----------------------------------------------------------------------------------------------- helpers
def make_policy(cfg: ProjectConfig, root: Path | None = None) -> Policy:
    """The policy the config names. Imported here, when first needed: the builtin policy loads libcst and YAML."""
    if cfg.search.policy == "learned":
        from nightlab.agent.policy.learned import LearnedPolicy

        return LearnedPolicy.from_config(cfg.learned, root)
    if cfg.search.policy == "llm":
        from nightlab.agent.policy.llm import LLMPolicy

        if not cfg.llm.model:
            raise NightlabError("policy 'llm' needs a model: set [llm] model in nightlab.toml or pass --model")
        return LLMPolicy(cfg.llm)
    return BuiltinPolicy()


__all__ = ["BASELINE", "RERUN", "Decision", "Engine", "EngineOptions", "Summary", "make_policy", "open_store",
           "python_for", "ranked", "signal_project", "state_dir", "summarize"]
