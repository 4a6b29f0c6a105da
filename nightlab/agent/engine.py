"""The experiment loop: a persisted state machine over the experiments table.

Every step writes its intent to the store before acting, so the loop can be killed at any moment and resumed by
`reconcile()`: proposals become experiments (a row, then a branch and commit), experiments are approved (step mode)
or queued (autonomous), queued experiments are launched on free slots under the detached job wrapper, and finished
jobs are analysed (metric, curve, failure class, verdict). When nothing can progress — all slots busy or a human
needed — the engine waits for an event, or with `detach` hibernates: records its wake conditions and returns.
"""

from __future__ import annotations

import math
import os
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import diagnose, run_metrics
from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import apply_edits, matches_any
from nightlab.agent.lock import ProjectLock
from nightlab.agent.policy.base import Edit, ExperimentView, Policy, PolicyContext, Proposal
from nightlab.agent.store import UNCONFIRMED, Approval, Experiment, Session, Store
from nightlab.agent.workspace import Workspace
from nightlab.errors import EditError, NightlabError
from nightlab.sandbox import lease, runner, slots
from nightlab.sandbox.spec import LOG_FILE, PROGRESS_FILE, JobSpec
from nightlab.sandbox.watch import Waker, signal_project

BASELINE = "baseline"
RERUN = "rerun"
LOG_TAIL_CHARS = 4000


@dataclass
class Decision:
    """A human's answer to an approval: approved, rejected (with feedback) or quit (stop asking, stop the loop)."""

    state: str
    feedback: str | None = None


Approver = Callable[["Engine", Approval, Experiment], Decision | None]
EventSink = Callable[[str, str, dict[str, Any]], None]


@dataclass
class EngineOptions:
    mode: str = "step"  # step | autonomous
    budget: int | None = None  # training runs this invocation may start; None = config default
    detach: bool = False  # hibernate (return) instead of waiting when nothing can progress
    unsafe_no_sandbox: bool = False
    wake: bool = False  # continuing a hibernating session rather than starting one
    poll_s: float = 1.0
    who: str = "console"


@dataclass
class Summary:
    session_id: int
    state: str
    runs_started: int
    baseline: float | None
    best_id: int | None
    best: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)


def state_dir(root: Path) -> Path:
    return Path(root) / ".nightlab"


def open_store(root: Path) -> Store:
    return Store(state_dir(root) / "nightlab.db")


class Engine:
    def __init__(self, root: Path, cfg: ProjectConfig, *, options: EngineOptions | None = None,
                 policy: Policy | None = None, store: Store | None = None, workspace: Workspace | None = None,
                 approver: Approver | None = None, on_event: EventSink | None = None) -> None:
        self.root = Path(root).resolve()
        self.cfg = cfg
        self.options = options or EngineOptions()
        self.ws = workspace or Workspace(self.root)
        self.ws.ensure_state_dir()
        self.store = store or open_store(self.root)
        self._policy = policy
        self.approver = approver
        self.on_event = on_event
        self.lock = ProjectLock(state_dir(self.root))
        self.session: Session | None = None
        # the machine's slots, leased machine-wide so that projects running at once never oversubscribe it
        self.pool = lease.MachinePool(
            slots.discover(cfg.slots.cpus, cfg.slots.threads_per_job, cfg.slots.gpus), str(self.root),
            wake_argv=self._wake_argv(), signal_path=str(state_dir(self.root) / "signal"),
            lock_path=str(self.lock.path))
        self._slot_wait = ""  # what the engine last said about waiting for another project's slot
        self._stop = False
        self._invalid_streak = 0
        self._exhausted = False
        self._waker: Waker | None = None

    # ------------------------------------------------------------------------------------------- plumbing
    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = make_policy(self.cfg)
        return self._policy

    def _wake_argv(self) -> list[str]:
        return [sys.executable, "-m", "nightlab", "wake", "--quiet", str(self.root)]

    @property
    def sid(self) -> int:
        assert self.session is not None
        return self.session.id

    def emit(self, kind: str, message: str, exp_id: int | None = None, **data: Any) -> None:
        self.store.event(kind, message, session_id=self.session.id if self.session else None,
                         experiment_id=exp_id, data=data)
        if self.on_event is not None:
            self.on_event(kind, message, {"experiment_id": exp_id, **data})

    @property
    def seeded(self) -> bool:
        """Whether the command varies with the seed (else re-runs with other seeds measure nothing)."""
        return "{seed}" in self.cfg.command

    # ------------------------------------------------------------------------------------------- entry points
    def check_sandbox(self) -> str:
        """The confinement layer jobs will get; one clear error before anything runs if it is not available."""
        from nightlab.sandbox import isolate

        wanted = self.cfg.sandbox.isolation
        if self.options.unsafe_no_sandbox:
            return "none"
        if wanted == "none":
            raise NightlabError("sandbox.isolation = 'none' runs untrusted code with layer 0 only; pass "
                                "--unsafe-no-sandbox to confirm")
        return isolate.check(wanted)

    def run(self) -> Summary:
        """Run until the budget is spent or the policy has nothing left (or hibernate, with detach)."""
        self.layer = self.check_sandbox()
        if self.cfg.metric.source == "tensorboard":
            from nightlab.agent import tbevents

            tbevents.require()
        self.lock.acquire("wake" if self.options.wake else "engine")
        try:
            self.session = self._open_session()
            from nightlab.agent import projects

            projects.register(self.root)  # listed by `nightlab projects` and the TUI's overview
            self._waker = Waker(state_dir(self.root) / "runs", state_dir(self.root) / "signal")
            if self.cfg.search.policy == "llm" and hasattr(self.policy, "prewarm"):
                self.policy.prewarm()  # the ~3 s litellm import overlaps the baseline run
            self.reconcile()
            try:
                self._loop()
            except KeyboardInterrupt:
                self._interrupt()
                raise
            return self.summary()
        finally:
            if self._waker is not None:
                self._waker.close()
            self.lock.release()

    def _open_session(self) -> Session:
        latest = self.store.latest_session()
        if self.options.wake:
            if latest is None:
                raise NightlabError("nothing to wake: no session has run in this project")
            self.store.update_session(latest.id, state="active", wake_conditions=[], pid=os.getpid())
            return self.store.session(latest.id)
        if latest is not None and latest.state != "done":
            self.store.update_session(latest.id, state="done")
        budget = self.options.budget if self.options.budget is not None else self.cfg.search.budget
        s = self.store.create_session(str(self.root), self.options.mode, self.cfg.search.policy, budget,
                                      self.ws.head_commit(), self.ws.current_branch())
        self.store.update_session(s.id, pid=os.getpid(), unsafe=int(self.options.unsafe_no_sandbox))
        return self.store.session(s.id)

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
            if self.options.detach:
                self._hibernate(conditions)
                return
            waiting_on_human = bool(conditions) and all(c.startswith("approval") for c in conditions)
            self.store.update_session(self.sid, state="waiting" if waiting_on_human else "active",
                                      wake_conditions=conditions)
            assert self._waker is not None
            self._waker.wait(self.options.poll_s)

    def tick(self) -> bool:
        """One round of progress; True if anything changed."""
        self.session = self.store.session(self.sid)
        self.options.mode = self.session.mode  # the mode may be toggled from the TUI or another process
        progressed = self._collect()
        progressed |= self._process_decisions()
        progressed |= self._launch_queued()
        if not progressed:
            progressed |= self._plan()
        return progressed

    def stop(self) -> None:
        self._stop = True
        if self._waker is not None:
            self._waker.poke()

    # ------------------------------------------------------------------------------------------- derived state
    def budget_left(self) -> int:
        s = self.store.session(self.sid)
        return max(0, s.budget - s.runs_started)

    def experiments(self) -> list[Experiment]:
        return self.store.experiments()

    def baseline(self) -> Experiment | None:
        rows = self.store.experiments("kind = ?", (BASELINE,))
        return rows[0] if rows else None

    def sign(self) -> float:
        return 1.0 if self.cfg.metric.goal == "maximize" else -1.0

    def scores(self, exps: list[Experiment] | None = None) -> dict[int, list[float]]:
        """Experiment id -> metrics of its successful runs (its own and its seed re-runs)."""
        exps = exps if exps is not None else self.experiments()
        out: dict[int, list[float]] = {}
        for e in exps:
            if e.metric is None or e.run_result != "succeeded":
                continue
            key = e.rerun_of if e.kind == RERUN and e.rerun_of is not None else e.id
            out.setdefault(key, []).append(e.metric)
        return out

    def score(self, exp_id: int, scores: dict[int, list[float]] | None = None) -> float | None:
        vals = (scores or self.scores()).get(exp_id)
        return statistics.fmean(vals) if vals else None

    def noise_floor(self) -> float:
        """The seed spread a change must beat (at least `search.min_improvement`).

        Measured on the baseline's seed runs; once at least two other experiments have been re-run with another seed
        (confirmations), their typical spread replaces it when it is smaller. A baseline that barely trains scatters
        far more between seeds than a model that trains well (one task: 0.589 vs 0.467 at the baseline, ±0.01 after
        the first fixes), and judging every later change by that spread throws real gains away. The typical spread
        is a log-scale (geometric) mean of the confirmations' standard deviations, not a pooled variance: the
        first confirmation is often of a model still barely trained (0.820 vs 0.667), and pooled with a tight pair
        near the best (0.937 vs 0.930) it set a floor of 0.077 that discarded a +0.03 gain; the log-scale mean
        gives 0.024 (search benchmark, one MLP task over five seeds: 0.960 -> 0.976, no other task changed). It only
        ever lowers the floor, and every change it lets through is still confirmed on a second seed.

        Measuring it at the current best alone was tried (2026-12-01): a two-seed estimate there is so noisy that it
        lost about as many real gains as it saved (demo best 0.660 -> 0.638). Building on a clear win (> 5x the
        noise) before its confirmation, to save the re-run, was tried too: children were then judged against a
        one-seed reference, spurious ones got kept, and the search benchmark did no better (one task 0.618 -> 0.604).
        """
        base = self.baseline()
        sc = self.scores()
        vals = sc.get(base.id, []) if base else []
        sd = statistics.stdev(vals) if len(vals) >= 2 else 0.0
        spreads = [(statistics.stdev(v), len(v) - 1) for k, v in sc.items()
                   if (base is None or k != base.id) and len(v) >= 2]
        spreads = [(s, dof) for s, dof in spreads if s > 0]
        if len(spreads) >= 2 and sd > 0:
            # a geometric (log-scale) mean: one early, barely trained pair scattered far apart must not outweigh
            # the pairs measured near the current best
            dof = sum(d for _, d in spreads)
            typical = math.exp(sum(math.log(s) * d for s, d in spreads) / dof)
            sd = min(sd, typical)
        return max(sd, self.cfg.search.min_improvement)

    def best(self, exclude: int | None = None) -> tuple[int | None, float | None]:
        exps = self.experiments()
        sc = self.scores(exps)
        best_id, best_val = None, None
        for e in exps:
            if e.status not in ("kept", "promoted") or e.kind == RERUN or e.id == exclude:
                continue
            v = self.score(e.id, sc)
            if v is None:
                continue
            if best_val is None or self.sign() * (v - best_val) > 0:
                best_id, best_val = e.id, v
        return best_id, best_val

    def _active(self) -> list[Experiment]:
        return self.store.experiments("status IN ('proposed', 'approved', 'queued', 'running')")

    def _finished(self) -> bool:
        if self._active():
            return False
        if self.store.open_jobs():
            return False
        return self.budget_left() <= 0 or self._exhausted

    def wake_conditions(self) -> list[str]:
        conds = [f"job of experiment #{j.experiment_id} ends" for j in self.store.open_jobs()]
        conds += [f"approval {a.id} ({a.kind} #{a.experiment_id}) decided" for a in self.store.approvals("pending")]
        if self._slot_wait and self.store.experiments("status = 'queued'"):
            conds.append(f"{lease.SLOT_WAIT} ({self._slot_wait})")
        return conds

    # ------------------------------------------------------------------------------------------- reconcile
    def reconcile(self) -> None:
        """Make the store agree with the world after any crash: jobs, half-made experiments, stray branches."""
        # jobs: finished ones are analysed by _collect; those whose process is gone without a status are lost
        for job in self.store.open_jobs():
            status = runner.read_status(job.run_dir)
            if status is not None:
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
                                          state="running")
            if runner.read_status(job.run_dir) is None and not runner.wrapper_alive(job.run_dir):
                self._mark_lost(job.id, job.experiment_id, "the job's process is gone without a status")
            elif job.slot:
                self.pool.mark_busy(job.slot, run=_lease_run(job.run_dir))
        # experiments marked running without an open job: lost between the row and the launch
        open_exp = {j.experiment_id for j in self.store.open_jobs()}
        for e in self.store.experiments("status = 'running'"):
            if e.id not in open_exp:
                self._requeue_or_lose(e, "launch interrupted")
        # finished runs whose verdict was interrupted: complete it (every step of a verdict is idempotent)
        for e in self.store.experiments("run_result IS NOT NULL AND COALESCE(settled, 0) = 0 AND status NOT IN "
                                        "('queued', 'running')"):
            self._verdict(e, None)
            self.store.update_experiment(e.id, settled=1)
            self._set_reward(e.id)
        # experiments proposed but never materialised: complete them (the row holds the edits)
        for e in self.store.experiments("status IN ('proposed', 'approved', 'queued') AND commit_sha IS NULL"):
            self._materialise(e)
        # branches without an experiment row: roll them back
        known = {e.branch for e in self.experiments() if e.branch}
        for br in self.ws.nightlab_branches():
            if br not in known:
                parts = br.split("/")
                if len(parts) == 3 and parts[2].isdigit() and self.store.find_experiment(int(parts[2])) is None:
                    self.ws.delete_branch(br)
        # worktrees of settled experiments: prune
        if self.ws.worktrees.exists():
            active = {e.id for e in self._active()}
            for d in self.ws.worktrees.iterdir():
                if d.name.isdigit() and int(d.name) not in active:
                    self.ws.prune(int(d.name))

    def _mark_lost(self, job_id: int, exp_id: int, why: str) -> None:
        self.store.update_job(job_id, state="lost", ended=time.time())
        e = self.store.experiment(exp_id)
        self._requeue_or_lose(e, why)

    def _requeue_or_lose(self, e: Experiment, why: str) -> None:
        if e.attempts < 2:
            self.store.update_experiment(e.id, status="queued", error=f"lost ({why}); re-queued")
            self.emit("lost", f"#{e.id} lost ({why}); re-queued once", e.id)
        else:
            self.store.update_experiment(e.id, status="lost", run_result="lost", error=f"lost ({why})")
            self.emit("lost", f"#{e.id} lost again ({why}); giving up on it", e.id)

    # ------------------------------------------------------------------------------------------- collect + analyse
    def _collect(self) -> bool:
        progressed = False
        for job in self.store.open_jobs():
            status = runner.read_status(job.run_dir)
            if status is None:
                if job.state == "running" and not runner.wrapper_alive(job.run_dir) and \
                        runner.read_status(job.run_dir) is None:
                    self._mark_lost(job.id, job.experiment_id, "the job wrapper died")
                    if job.slot:
                        self.pool.release(job.slot)
                    progressed = True
                continue
            # order matters for crash safety: results first (idempotent), then the job is closed, then the verdict
            # (completed by reconcile if we die before it: see `settled`)
            analysed = self._analyse(self.store.experiment(job.experiment_id), Path(job.run_dir), status)
            self.store.update_job(job.id, state="ended", exit_code=status.exit_code, ended=status.ended_at)
            if job.slot:
                self.pool.release(job.slot)
            if analysed is not None:
                e, failure = analysed
                self._verdict(e, failure)
                self.store.update_experiment(e.id, settled=1)
                self._set_reward(e.id)
                self.ws.prune(e.id)
            progressed = True
        return progressed

    def _analyse(self, e: Experiment, run_dir: Path,
                 status: runner.JobStatus) -> tuple[Experiment, diagnose.Failure | None] | None:
        """Record a finished run's results (metric, curves, failure class, stage). None when it goes back to the
        queue (interrupted by Ctrl+C); else the experiment and its failure for the verdict."""
        log = _read_tail(run_dir / LOG_FILE, 8 * 1024 * 1024)
        # the job ran in its worktree, or in the instrumented copy of it (instrument = "static")
        cwd = run_dir / "src" if (run_dir / "src").is_dir() else self.ws.worktree_path(e.id)
        got = run_metrics.read_run(self.cfg.metric, log, cwd, since=status.started_at, run_dir=run_dir)
        reading, loss_curve = got.reading, got.loss_curve
        if got.note:
            self.emit("note", f"#{e.id}: {got.note}", e.id)
        interrupted = status.state == "killed" and status.reason == "interrupted"
        ok = status.state == "succeeded" and reading.value is not None and not status.protected_changed
        if ok:
            result = "succeeded"
        elif status.state == "timed_out":
            result = "timed_out"
        elif status.state == "killed":
            result = "cancelled"
        else:
            result = "failed"
        failure = None
        if not ok:
            failure = diagnose.classify_failure(log, status.exit_code, status.state, status.reason, reading.error)
            if status.protected_changed:
                failure.cls = "protected_modified"
                failure.summary = f"the run changed protected file(s): {', '.join(status.protected_changed)}; " \
                                  "the result is invalid"
        pathologies = diagnose.curve_pathologies(loss_curve, reading.curve, goal=self.cfg.metric.goal,
                                                 seconds=status.seconds, timeout_s=self.cfg.timeout)
        diagnosis = failure.summary if failure else "; ".join(f"{p.kind}: {p.evidence}" for p in pathologies[:2])
        stage = _stage_of(run_dir, log, reading.value is not None, status.state == "succeeded")
        changes: dict[str, Any] = {
            "run_result": result, "metric": reading.value if ok else None,
            "curve": [list(p) for p in reading.curve], "loss_curve": [list(p) for p in loss_curve[-500:]],
            "failure_class": failure.cls if failure else None, "diagnosis": diagnosis or None,
            "seconds": status.seconds, "log_tail": log[-LOG_TAIL_CHARS:], "isolation": status.isolation,
            "protected_changed": status.protected_changed, "stage": stage,
        }
        if interrupted:
            # Ctrl+C: the run did not finish through no fault of its own; it runs again on resume
            self.store.update_experiment(e.id, status="queued", error="interrupted; re-queued", **{
                k: v for k, v in changes.items() if k in ("log_tail", "seconds")})
            return None
        self.store.update_experiment(e.id, status=result, settled=0, **changes)
        e = self.store.experiment(e.id)
        if ok:
            self.emit("finished", f"#{e.id} finished: {self.cfg.metric.name} = {reading.value:.6g} "
                                  f"({status.seconds:.1f} s)", e.id, metric=reading.value)
        else:
            self.emit("failed", f"#{e.id} {result}: {diagnosis}", e.id, failure_class=changes["failure_class"])
        return e, failure

    def _set_reward(self, exp_id: int) -> None:
        from nightlab.agent import reward as reward_mod

        e = self.store.experiment(exp_id)
        base = self.baseline()
        base_val = self.score(base.id) if base else None
        _, best_val = self.best(exclude=e.id if e.kind != RERUN else e.rerun_of)
        x = reward_mod.RewardInput(
            stage=e.stage or "", metric=e.metric, baseline=base_val, best_before=best_val,
            goal=self.cfg.metric.goal, noise_floor=self.noise_floor(), failure_class=e.failure_class,
            seconds=e.seconds or 0.0, timeout_s=self.cfg.timeout,
        )
        self.store.update_experiment(exp_id, reward=round(reward_mod.reward(x), 4))

    def _verdict(self, e: Experiment, failure: diagnose.Failure | None) -> None:
        """Decide kept / discarded for a finished run, queue confirmations, noise runs and fixes."""
        if e.kind == BASELINE:
            if e.run_result == "succeeded":
                self.store.update_experiment(e.id, status="kept")
                self._queue_noise_runs(e)
            else:
                self._try_fix(e)
            return
        if e.kind == RERUN:
            target = self.store.experiment(e.rerun_of) if e.rerun_of else None
            self.store.update_experiment(e.id, status="kept" if e.run_result == "succeeded" else "discarded")
            if target is None:
                return
            if target.kind == BASELINE:
                if not [x for x in self._active() if x.rerun_of == target.id]:
                    self.emit("noise", f"noise floor from {len(self.scores().get(target.id, []))} baseline runs: "
                                       f"{self.noise_floor():.4g}", target.id, noise_floor=self.noise_floor())
                    self.store.update_session(self.sid, noise_floor=self.noise_floor())
                return
            if target.status == "succeeded" or (target.status == "kept" and target.error == UNCONFIRMED):
                self._judge(target, confirmed=True)  # awaiting confirmation (or kept unconfirmed at budget end)
                target = self.store.experiment(target.id)
            if e.run_result == "succeeded" and target.status in ("kept", "discarded"):
                # a confirmation shares its experiment's verdict: a "kept" re-run of a discarded change would mislead
                self.store.update_experiment(e.id, status=target.status)
            return
        if e.run_result != "succeeded":
            self.store.update_experiment(e.id, status=e.run_result or "failed")
            self._try_fix(e)
            return
        self._judge(e, confirmed=False)

    def _judge(self, e: Experiment, confirmed: bool) -> None:
        best_id, best_val = self.best(exclude=e.id)
        mine = self.score(e.id)
        assert mine is not None
        threshold = self.noise_floor()
        if best_val is None:
            self._keep(e, "first working version")
            return
        delta = self.sign() * (mine - best_val)
        if delta <= threshold:
            note = f"{'mean ' if confirmed else ''}{mine:.6g} vs best {best_val:.6g}: within noise ({threshold:.3g})" \
                if delta > 0 else f"{mine:.6g} vs best {best_val:.6g}: no improvement"
            self.store.update_experiment(e.id, status="discarded", error=note)
            self.emit("discarded", f"#{e.id} discarded: {note}", e.id)
            return
        if not confirmed and self.store.experiments("rerun_of = ? AND kind = ?", (e.id, RERUN)):
            return  # its confirmation is already queued or running
        why = f"{mine:.6g} vs {best_val:.6g} (+{delta:.3g} beyond noise {threshold:.3g})"
        if not confirmed and self.cfg.search.confirm and self.seeded:
            # runs already queued will spend budget first (one may be waiting for a slot another project holds)
            if self.budget_left() - len(self.store.experiments("status = 'queued' AND COALESCE(attempts, 0) = 0")) > 0:
                self._queue_rerun(e, reason="confirm")
                self.emit("confirm", f"#{e.id} beats #{best_id} ({mine:.6g} vs {best_val:.6g}); re-running with "
                                     "another seed to confirm", e.id)
                return
            # the budget is spent: the best so far, but on one seed; the next `nightlab run` confirms it first
            self._keep(e, f"{why}; {UNCONFIRMED}", note=UNCONFIRMED)
            return
        self._keep(e, why)

    def _keep(self, e: Experiment, why: str, note: str | None = None) -> None:
        self.store.update_experiment(e.id, status="kept", error=note)
        self.emit("kept", f"#{e.id} is the new best: {why}", e.id)

    def _queue_pending_confirmation(self) -> bool:
        """Re-run a best that was kept on one seed when an earlier session ran out of budget (see `_judge`)."""
        if not (self.cfg.search.confirm and self.seeded):
            return False
        for e in self.store.experiments("status = 'kept' AND kind != ? AND error = ?", (RERUN, UNCONFIRMED)):
            if self.store.experiments("rerun_of = ? AND kind = ?", (e.id, RERUN)):
                continue
            self._queue_rerun(e, reason="confirm")
            self.emit("confirm", f"#{e.id} was kept on one seed when the last session's budget ran out; "
                                 "re-running it with another seed to confirm", e.id)
            return True
        return False

    def _queue_noise_runs(self, base: Experiment) -> None:
        if not self.seeded:
            return
        have = 1 + len(self.store.experiments("kind = ? AND rerun_of = ?", (RERUN, base.id)))
        for k in range(have, self.cfg.search.noise_seeds):
            if self.budget_left() - len(self.store.experiments("status = 'queued'")) <= 1:
                break
            self._queue_rerun(base, reason="noise", seed=self.cfg.search.seed + k)

    def _queue_rerun(self, e: Experiment, reason: str, seed: int | None = None) -> None:
        used = {e.seed} | {x.seed for x in self.store.experiments("rerun_of = ?", (e.id,))}
        if seed is None:
            seed = self.cfg.search.seed + 1
            while seed in used:
                seed += 1
        title = f"re-run #{e.id} with seed {seed} ({'noise floor' if reason == 'noise' else 'confirm'})"
        self.store.add_experiment(
            session_id=self.sid, parent_id=e.id, title=title, rationale="", kind=RERUN, rerun_of=e.id,
            branch=e.branch, commit_sha=e.commit_sha, status="queued", seed=seed, knobs=e.knobs, edits=[],
            policy="engine", depth=e.depth,
        )

    def _try_fix(self, e: Experiment) -> None:
        if self.store.experiments("parent_id = ? AND kind != ?", (e.id, RERUN)):
            return  # a fix was already proposed (we are completing an interrupted verdict)
        if e.depth >= self.cfg.search.debug_depth:
            self.emit("abandon", f"#{e.id}: {e.depth} fix attempts already; abandoning this branch", e.id)
            return
        if self.budget_left() <= 0 or not self._cost_ok():
            return
        try:
            proposal = self.policy.fix(self.context(), self.view(e))
            self._account()
        except Exception as err:  # a policy failure is a result to record, not a crash
            self._account(err)
            self.emit("policy_error", f"policy could not propose a fix for #{e.id}: {_one_line(err)}", e.id)
            return
        if proposal is None:
            self.emit("abandon", f"#{e.id}: no fix to try; abandoning this branch", e.id)
            return
        proposal.parent_id = e.id
        proposal.kind = proposal.kind or "fix"
        self.admit(proposal, depth=e.depth + 1)

    # ------------------------------------------------------------------------------------------- model cost
    def _account(self, err: BaseException | None = None) -> None:
        """Add what the last policy call spent (failed calls included) to the session's cost."""
        usage = getattr(err, "usage", None) or getattr(self._policy, "last_usage", None) or {}
        cost = float(usage.get("cost") or 0.0)
        if cost:
            self.store.add_cost(self.sid, cost)
        if hasattr(self._policy, "last_usage"):
            self._policy.last_usage = {}  # type: ignore[union-attr]

    def cost_limit(self) -> float:
        """max_cost, extended by max_cost again for every approved budget extension in this session."""
        extensions = [a for a in self.store.approvals(None)
                      if a.kind == "budget" and a.session_id == self.sid and a.state == "approved"]
        return self.cfg.llm.max_cost * (1 + len(extensions))

    def _cost_ok(self) -> bool:
        """False while the model's cost budget is spent: asks (once) for an extension and waits for the answer."""
        if self.cfg.search.policy != "llm" or self.cfg.llm.max_cost <= 0:
            return True
        spent = self.store.session(self.sid).cost
        if spent < self.cost_limit():
            return True
        mine = [a for a in self.store.approvals(None) if a.kind == "budget" and a.session_id == self.sid]
        if mine and mine[-1].state == "rejected":
            if not self._exhausted:
                self._exhausted = True
                self.emit("exhausted", f"model cost budget spent (${spent:.2f}); extension refused")
            return False
        if not mine or mine[-1].state != "pending":
            self.store.add_approval("budget", {"spent": spent, "limit": self.cost_limit(),
                                               "extend_by": self.cfg.llm.max_cost}, self.sid, None)
            self.emit("budget", f"model cost ${spent:.2f} reached the budget ${self.cost_limit():.2f}: "
                                "waiting for approval to extend it")
            self._notify(f"nightlab: model cost budget reached (${spent:.2f}); approve an extension to go on")
        return False

    # ------------------------------------------------------------------------------------------- plan
    def _plan(self) -> bool:
        if self.budget_left() <= 0 or self._stop:
            return False
        active = self._active()
        if self.baseline() is None:
            self._create_baseline()
            return True
        if active and (self.options.mode == "step" or len(active) >= max(1, self._parallel())):
            return False
        base = self.baseline()
        assert base is not None
        if base.status in ("queued", "running") or any(x.kind == RERUN for x in active):
            return False
        best_id, _ = self.best()
        if best_id is None and active:
            # nothing works yet and a fix is in flight: wait for it before proposing anything else
            return False
        planned = len([x for x in active if x.status in ("queued", "approved", "proposed")])
        if self.budget_left() - planned <= 0:
            return False
        if self._queue_pending_confirmation():
            return True
        if self._exhausted or not self._cost_ok():
            return False
        try:
            proposal = self.policy.propose(self.context())
            self._account()
        except Exception as err:  # a policy failure is a result, not a crash
            self._account(err)
            self.emit("policy_error", f"policy failed to propose: {_one_line(err)}")
            self._invalid_streak += 1
            if self._invalid_streak >= 3:
                self._exhausted = True
            return True
        if proposal is None:
            if not active:
                self._exhausted = True
                self.emit("exhausted", "the policy has nothing left to try")
            return False
        self.admit(proposal)
        return True

    def _parallel(self) -> int:
        n = self.pool.total
        if self.cfg.search.parallel:
            n = min(n, self.cfg.search.parallel)
        return n

    def _create_baseline(self) -> None:
        e = self.store.add_experiment(
            session_id=self.sid, parent_id=None, title="baseline: the code as committed",
            rationale="measure the starting point (and, with other seeds, the noise)", kind=BASELINE,
            seed=self.cfg.search.seed, status="queued", policy="engine", edits=[], knobs={},
        )
        base_commit = self.store.session(self.sid).base_commit or self.ws.head_commit()
        branch, sha = self.ws.materialise(e.id, self.sid, base_commit, {}, e.title, self.cfg.links)
        self.store.update_experiment(e.id, branch=branch, commit_sha=sha, patch="")
        self.emit("baseline", f"#{e.id} baseline queued (commit {sha[:8]})", e.id)

    def admit(self, proposal: Proposal, depth: int = 0) -> Experiment | None:
        """Validate a proposal, record it, make its branch and commit; queue it or ask for approval."""
        best_id, _ = self.best()
        parent_id = proposal.parent_id if proposal.parent_id is not None else (best_id or self._base_id())
        parent = self.store.experiment(parent_id) if parent_id is not None else None
        if parent is None or parent.commit_sha is None:
            self.emit("policy_error", f"proposal {proposal.title!r} has no usable parent")
            self._invalid_streak += 1
            return None
        try:
            changes = apply_edits(
                proposal.edits, lambda p: self.ws.read_file(parent.commit_sha or "", p), self._editable(),
                self.cfg.protected,
            )
        except EditError as err:
            self._invalid_streak += 1
            self.emit("policy_error", f"refused {proposal.title!r}: {err}")
            if self._invalid_streak >= 3:
                self._exhausted = True
            self.store.add_experiment(
                session_id=self.sid, parent_id=parent.id, title=proposal.title, rationale=proposal.rationale,
                kind=proposal.kind, knobs=proposal.knobs, edits=[e.__dict__ for e in proposal.edits],
                status="rejected", error=f"invalid edit: {err}", seed=self.cfg.search.seed,
                policy=self.policy.name, usage=proposal.usage, depth=depth,
            )
            return None
        if not changes:
            self._invalid_streak += 1
            self.emit("policy_error", f"refused {proposal.title!r}: it changes nothing")
            if self._invalid_streak >= 3:
                self._exhausted = True
            return None
        from nightlab.agent import memory

        proposal.parent_id = parent.id
        repeat = memory.is_repeat(proposal, [self.view(x) for x in self.experiments()],
                                  {x.id: x.patch or "" for x in self.experiments()})
        if repeat is not None:
            self._invalid_streak += 1
            if self._invalid_streak >= 3:
                self._exhausted = True
            self.emit("duplicate", f"refused {proposal.title!r}: it repeats {repeat}")
            self.store.add_experiment(
                session_id=self.sid, parent_id=parent.id, title=proposal.title, rationale=proposal.rationale,
                kind=proposal.kind, knobs=proposal.knobs, edits=[e.__dict__ for e in proposal.edits],
                status="rejected", error=f"repeats {repeat}", seed=self.cfg.search.seed,
                policy=self.policy.name, usage=proposal.usage, depth=depth,
            )
            return None
        self._invalid_streak = 0
        e = self.store.add_experiment(
            session_id=self.sid, parent_id=parent.id, title=proposal.title, rationale=proposal.rationale,
            expected_effect=proposal.expected_effect, kind=proposal.kind, knobs=proposal.knobs,
            edits=[{"path": x.path, "search": x.search, "replace": x.replace} for x in proposal.edits],
            seed=proposal.seed if proposal.seed is not None else self.cfg.search.seed, status="proposed",
            policy=self.policy.name, usage=proposal.usage, depth=depth, diagnosis=proposal.diagnosis or None,
        )
        made = self._materialise(e)
        if made is None:
            return None
        e = made
        dup = self._duplicate_of(e)
        if dup is not None:
            self.store.update_experiment(e.id, status="rejected", error=f"repeats #{dup.id} ({dup.title})")
            self.ws.prune(e.id)
            self.emit("duplicate", f"refused #{e.id} {e.title!r}: it repeats #{dup.id}", e.id)
            return None
        self.emit("proposed", f"#{e.id} {e.title}", e.id, rationale=e.rationale)
        if self.options.mode == "step" and e.kind not in (BASELINE, RERUN):
            appr = self.store.add_approval("hypothesis", {"title": e.title}, self.sid, e.id)
            self._notify(f"nightlab: experiment #{e.id} waits for your approval: {e.title}")
            self._ask(appr)
        else:
            self.store.update_experiment(e.id, status="queued")
        return self.store.experiment(e.id)

    def _materialise(self, e: Experiment) -> Experiment | None:
        """Create the branch and commit for a recorded experiment (idempotent, used by reconcile too)."""
        parent = self.store.experiment(e.parent_id) if e.parent_id is not None else None
        if parent is None or parent.commit_sha is None:
            self.store.update_experiment(e.id, status="rejected", error="parent has no commit")
            return None
        edits = [Edit(**x) for x in e.edits]
        try:
            changes = apply_edits(edits, lambda p: self.ws.read_file(parent.commit_sha or "", p), self._editable(),
                                  self.cfg.protected)
        except EditError as err:
            self.store.update_experiment(e.id, status="rejected", error=f"invalid edit: {err}")
            return None
        message = _commit_message(e)
        branch, sha = self.ws.materialise(e.id, self.sid, parent.commit_sha, changes, message, self.cfg.links)
        patch = self.ws.diff(parent.commit_sha, sha)
        self.store.update_experiment(e.id, branch=branch, commit_sha=sha, patch=patch)
        return self.store.experiment(e.id)

    def _duplicate_of(self, e: Experiment) -> Experiment | None:
        if not e.commit_sha:
            return None
        tree = self.ws.repo.commit(e.commit_sha).tree.hexsha
        for other in self.experiments():
            if other.id == e.id or other.kind == RERUN or not other.commit_sha or other.status == "rejected":
                continue
            try:
                if self.ws.repo.commit(other.commit_sha).tree.hexsha == tree:
                    return other
            except ValueError:
                continue
        return None

    def _base_id(self) -> int | None:
        b = self.baseline()
        return b.id if b else None

    def _editable(self) -> list[str]:
        return list(self.cfg.editable)

    # ------------------------------------------------------------------------------------------- approvals
    def _ask(self, appr: Approval) -> None:
        if self.approver is None:
            return
        e = self.store.experiment(appr.experiment_id) if appr.experiment_id else None
        if e is None:
            return
        decision = self.approver(self, appr, e)
        if decision is None:
            return
        if decision.state == "quit":
            self._stop = True
            return
        self.store.decide(appr.id, decision.state, self.options.who, decision.feedback)
        self._process_decisions()

    def _process_decisions(self) -> bool:
        """Act on approvals decided by anyone (this console, the TUI, `nightlab approve` from another shell)."""
        progressed = False
        for e in self.store.experiments("status = 'proposed'"):
            decided = [a for a in self.store.approvals(None) if a.experiment_id == e.id and a.kind == "hypothesis"]
            if not decided:
                if self.options.mode == "autonomous":
                    self.store.update_experiment(e.id, status="queued")
                    progressed = True
                elif self.approver is not None and e.commit_sha:
                    appr = self.store.add_approval("hypothesis", {"title": e.title}, self.sid, e.id)
                    self._ask(appr)
                    progressed = True
                continue
            last = decided[-1]
            if last.state == "approved":
                self.store.update_experiment(e.id, status="queued")
                self.emit("approved", f"#{e.id} approved by {last.who}", e.id)
                progressed = True
            elif last.state == "rejected":
                self.store.update_experiment(e.id, status="rejected", error=f"rejected: {last.feedback or ''}".strip(),
                                             diagnosis=last.feedback)
                self.ws.prune(e.id)
                self.emit("rejected", f"#{e.id} rejected by {last.who}: {last.feedback or 'no reason given'}", e.id)
                progressed = True
            elif last.state == "pending" and self.options.mode == "autonomous":
                self.store.decide(last.id, "approved", "autonomous mode")
                self.store.update_experiment(e.id, status="queued")
                progressed = True
            elif last.state == "pending" and self.approver is not None and not self._stop:
                self._ask(last)
                progressed = not self._stop
        return progressed

    def _notify(self, message: str) -> None:
        if self.cfg.notify.command:
            import subprocess

            try:
                subprocess.Popen([*shlex.split(self.cfg.notify.command), message], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError as err:
                self.emit("notify_error", f"notify command failed: {err}")

    # ------------------------------------------------------------------------------------------- launch
    def _launch_queued(self) -> bool:
        progressed = False
        for e in self.store.experiments("status = 'queued'"):
            if (self.budget_left() <= 0 and e.attempts == 0) or self._stop:
                continue
            slot = self.pool.acquire(self.pool.gpus_per_job(self.cfg.slots.gpus_per_job))
            if slot is None:
                waiting = self.pool.waiting_text()
                if waiting and waiting != self._slot_wait:
                    self.emit("slot_wait", f"#{e.id} waits for a machine slot: {waiting}", e.id)
                self._slot_wait = waiting
                break
            self._slot_wait = ""
            try:
                self._launch(e, slot)
            except NightlabError as err:
                self.pool.release(slot.id)
                self.store.update_experiment(e.id, status="failed", run_result="failed", error=str(err),
                                             failure_class="launch_error", diagnosis=str(err))
                self.emit("failed", f"#{e.id} could not start: {err}", e.id)
            progressed = True
        return progressed

    def _launch(self, e: Experiment, slot: slots.Slot) -> None:
        assert e.commit_sha is not None
        wt = self.ws.checkout(e.id, e.commit_sha, self.cfg.links)
        attempt = e.attempts + 1
        run_dir = state_dir(self.root) / "runs" / (str(e.id) if attempt == 1 else f"{e.id}.{attempt}")
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        if self.cfg.instrument == "static":
            wt = self._static_copy(e, wt, run_dir)
        protected = {p: runner.hash_file(wt / p) for p in self._protected_files(wt)}
        spec = JobSpec(
            job_id=str(e.id), argv=["/bin/sh", "-c", self.cfg.command.replace("{seed}", str(e.seed))],
            cwd=str(wt), run_dir=str(run_dir), env=self._job_env(slot, e, run_dir), timeout_s=self.cfg.timeout,
            isolation="none" if self.options.unsafe_no_sandbox else self.cfg.sandbox.isolation,
            writable=list(self.cfg.sandbox.writable),
            # linked data lives outside the worktree: the engine made those links, so their targets may be read
            readable=list(self.cfg.sandbox.readable) + [str(self.root / p) for p in self.cfg.links]
            + ([] if self.cfg.instrument == "off" else [_hook_dir()]),
            allow_network=self.cfg.sandbox.network, memory_mb=self.cfg.sandbox.memory_mb or None,
            cpu_seconds=self.cfg.sandbox.cpu_seconds or None, max_log_bytes=self.cfg.sandbox.max_log_mb << 20,
            protected=protected, lock_path=str(self.lock.path), wake_argv=self._wake_argv(),
            leases=self.pool.lease_paths(slot.id), lease_run=self.pool.run_of(slot.id),
        )
        self.store.update_experiment(e.id, status="running", attempts=attempt)
        job = self.store.add_job(e.id, str(run_dir), str(run_dir / LOG_FILE), slot.id)
        if attempt == 1:  # re-running a lost job spends no budget: the first try never produced a result
            self.store.update_session(self.sid, runs_started=self.store.session(self.sid).runs_started + 1)
        pids = runner.launch(spec)
        self.store.update_job(job.id, pid=pids.get("pid"), pid_start=pids.get("start"), state="running",
                              wrapper_pid=pids.get("wrapper_pid"), wrapper_start=pids.get("wrapper_start"))
        self.emit("started", f"#{e.id} started: {e.title} (seed {e.seed}, slot {slot.id})", e.id,
                  run_dir=str(run_dir))

    def _static_copy(self, e: Experiment, wt: Path, run_dir: Path) -> Path:
        """Opt-in static instrumentation: run from a copy of the worktree whose editable Python files print stage
        markers. The copy lives in the run dir and is never committed."""
        import shutil

        from nightlab.agent.instrument_static import instrument_copy

        dest = run_dir / "src"
        files = self.ws.tracked_files(e.commit_sha)
        marked = [f for f in files if f.endswith(".py") and matches_any(f, self.cfg.editable)
                  and not matches_any(f, self.cfg.protected)]
        instrument_copy(wt, marked, dest)
        for f in files:
            if f not in marked and (wt / f).is_file():
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(wt / f, dest / f)
        self.ws._link(dest, self.cfg.links)
        return dest

    def _protected_files(self, wt: Path) -> list[str]:
        if not self.cfg.protected:
            return []
        out = []
        for p in self.ws.tracked_files():
            if matches_any(p, self.cfg.protected) and (wt / p).is_file():
                out.append(p)
        return out

    def _job_env(self, slot: slots.Slot, e: Experiment, run_dir: Path) -> dict[str, str]:
        from nightlab.sandbox import isolate

        py = python_for(self.root, self.cfg)
        env = isolate.job_environment(dict(os.environ), dict(self.cfg.sandbox.env), list(self.cfg.sandbox.pass_env))
        bindir = str(Path(py).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
        if (Path(py).parent.parent / "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(Path(py).parent.parent)
        env.update(slots.slot_env(slot, self.cfg.slots.threads_per_job))
        env["PYTHONUNBUFFERED"] = "1"
        env["NIGHTLAB_JOB_SEED"] = str(e.seed)
        env["NIGHTLAB_JOB_ID"] = str(e.id)
        if self.cfg.instrument == "off":
            return env
        from nightlab.sandbox import instrument

        return instrument.job_env(env, str(run_dir / PROGRESS_FILE))

    # ------------------------------------------------------------------------------------------- endings
    def _hibernate(self, conditions: list[str]) -> None:
        self.store.update_session(self.sid, state="hibernating", wake_conditions=conditions, pid=None)
        self.emit("hibernate", "hibernating until: " + "; ".join(conditions) if conditions else "hibernating")

    def _finish(self) -> None:
        self.pool.stop_waiting()
        self.store.update_session(self.sid, state="done", wake_conditions=[], pid=None)
        best_id, best_val = self.best()
        base = self.baseline()
        base_val = self.score(base.id) if base else None
        if best_id is not None and base is not None and best_id != base.id:
            pending = [a for a in self.store.approvals("pending") if a.kind == "promote" and a.experiment_id == best_id]
            if not pending:
                self.store.add_approval("promote", {"metric": best_val, "baseline": base_val}, self.sid, best_id)
            self._notify(f"nightlab: session done; best #{best_id} {self.cfg.metric.name}={best_val:.6g} "
                         f"(baseline {base_val}) waits for review")
        self.emit("done", f"session {self.sid} done: {self.store.session(self.sid).runs_started} run(s)")

    def _interrupt(self) -> None:
        """Ctrl+C in the foreground: stop our running jobs, record them for resumption, keep everything else."""
        for job in self.store.open_jobs():
            runner.stop(job.run_dir, "interrupted")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(runner.read_status(j.run_dir) is None and
                                                 runner.wrapper_alive(j.run_dir) for j in self.store.open_jobs()):
            time.sleep(0.1)
        self._collect()
        for e in self.store.experiments("status = 'running'"):
            self.store.update_experiment(e.id, status="queued", error="interrupted; re-queued")
        if self.session is not None:
            self.store.update_session(self.sid, state="hibernating", wake_conditions=["nightlab run"], pid=None)
        self.emit("interrupted", "interrupted: running jobs stopped and re-queued; `nightlab run` resumes")

    def summary(self) -> Summary:
        s = self.store.session(self.sid)
        return summarize(self.store, self.cfg, s)

    # ------------------------------------------------------------------------------------------- policy context
    def view(self, e: Experiment) -> ExperimentView:
        return ExperimentView(
            id=e.id, parent_id=e.parent_id, title=e.title, kind=e.kind, status=e.status, run_result=e.run_result,
            metric=e.metric, curve=[(int(p[0]), float(p[1])) for p in e.curve],
            loss_curve=[(int(p[0]), float(p[1])) for p in e.loss_curve], knobs=dict(e.knobs),
            failure_class=e.failure_class, diagnosis=e.diagnosis or e.error, log_tail=e.log_tail or "",
            seed=e.seed, seconds=e.seconds, stage=e.stage,
        )

    def context(self) -> PolicyContext:
        exps = self.experiments()
        best_id, _ = self.best()
        commits = {e.id: e.commit_sha for e in exps}
        base = self.baseline()
        base_commit = (base.commit_sha if base else None) or self.ws.head_commit()

        def read_file(exp_id: int | None, path: str) -> str:
            sha = commits.get(exp_id) if exp_id is not None else None
            text = self.ws.read_file(sha or base_commit, path)
            return text if text is not None else ""

        brief = ""
        if self.cfg.brief:
            bp = self.root / self.cfg.brief
            brief = bp.read_text() if bp.is_file() else ""
        return PolicyContext(
            root=str(self.root), metric=self.cfg.metric.name, goal=self.cfg.metric.goal,
            editable=self._editable_files(base_commit), protected=list(self.cfg.protected),
            experiments=[self.view(e) for e in exps], best_id=best_id, baseline_id=base.id if base else None,
            noise_floor=self.noise_floor(), brief=brief, timeout_s=self.cfg.timeout, runs_left=self.budget_left(),
            read_file=read_file, rng=random.Random(f"{self.cfg.search.seed}:{len(exps)}"),
            debug_depth=self.cfg.search.debug_depth,
        )

    def _editable_files(self, commit: str) -> list[str]:
        files = self.ws.tracked_files(commit)
        return [f for f in files if matches_any(f, self.cfg.editable) and not matches_any(f, self.cfg.protected)]


# ----------------------------------------------------------------------------------------------- helpers
def make_policy(cfg: ProjectConfig) -> Policy:
    if cfg.search.policy == "llm":
        from nightlab.agent.policy.llm import LLMPolicy

        if not cfg.llm.model:
            raise NightlabError("policy 'llm' needs a model: set [llm] model in nightlab.toml or pass --model")
        return LLMPolicy(cfg.llm)
    from nightlab.agent.policy.builtin import BuiltinPolicy

    return BuiltinPolicy()


def python_for(root: Path, cfg: ProjectConfig) -> str:
    """The interpreter that `python` means in the training command."""
    if cfg.python:
        p = Path(cfg.python)
        return str(p if p.is_absolute() else (root / p))
    for venv in (".venv", "venv", "env"):
        cand = Path(root) / venv / "bin" / "python"
        if cand.exists():
            return str(cand)
    return sys.executable


def _commit_message(e: Experiment) -> str:
    body = e.rationale.strip()
    msg = e.title.strip() or f"experiment {e.id}"
    if body:
        msg += "\n\n" + body
    return msg + f"\n\nNightlab-Experiment: {e.id}\n"


def _read_tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size > limit:
                f.seek(0)
                head = f.read(limit // 4)
                f.seek(size - (limit - limit // 4))
                return (head + b"\n" + f.read()).decode("utf-8", "replace")
            f.seek(0)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _stage_of(run_dir: Path, log: str, metric_found: bool, exit_ok: bool) -> str:
    """The furthest stage the run reached: the import hook's markers, else what its log shows."""
    from nightlab.sandbox import stages

    progress = stages.read_progress(run_dir)
    return stages.best_stage(progress, stages.stage_from_log(log, metric_found, exit_ok), exit_ok=exit_ok) \
        or "not_started"


def _lease_run(run_dir: str) -> str:
    """The slot-lease token a running job's spec names ("" when unreadable)."""
    try:
        return JobSpec.read(Path(run_dir) / "spec.json").lease_run
    except (OSError, ValueError, TypeError):
        return ""


def _hook_dir() -> str:
    from nightlab.sandbox import instrument

    return instrument.hook_dir()


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def summarize(store: Store, cfg: ProjectConfig, session: Session | None) -> Summary:
    """The ranked table: every experiment with its (seed-averaged) metric and change vs the baseline."""
    exps = store.experiments()
    sign = 1.0 if cfg.metric.goal == "maximize" else -1.0
    scores: dict[int, list[float]] = {}
    for e in exps:
        if e.metric is not None and e.run_result == "succeeded":
            key = e.rerun_of if e.kind == RERUN and e.rerun_of is not None else e.id
            scores.setdefault(key, []).append(e.metric)
    base = next((e for e in exps if e.kind == BASELINE), None)
    base_val = statistics.fmean(scores[base.id]) if base and scores.get(base.id) else None
    rows: list[dict[str, Any]] = []
    for e in exps:
        if e.kind == RERUN:
            continue
        vals = scores.get(e.id, [])
        val = statistics.fmean(vals) if vals else None
        rows.append({
            "id": e.id, "parent": e.parent_id, "status": e.status, "kind": e.kind, "title": e.title,
            "metric": val, "runs": len(vals), "seed": e.seed, "stage": e.stage, "reward": e.reward,
            "delta": (val - base_val) if val is not None and base_val is not None else None,
            "failure_class": e.failure_class, "seconds": e.seconds, "branch": e.branch, "commit": e.commit_sha,
            "unconfirmed": e.status == "kept" and e.error == UNCONFIRMED,
        })
    best: dict[str, Any] | None = None
    for r in rows:
        if r["status"] in ("kept", "promoted") and r["metric"] is not None and (
                best is None or sign * (r["metric"] - best["metric"]) > 0):
            best = r
    return Summary(
        session_id=session.id if session else 0, state=session.state if session else "none",
        runs_started=session.runs_started if session else 0, baseline=base_val,
        best_id=best["id"] if best else None, best=best["metric"] if best else None, rows=rows,
    )


def ranked(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    sign = 1.0 if goal == "maximize" else -1.0
    return sorted(rows, key=lambda r: (r["metric"] is None, -sign * (r["metric"] if r["metric"] is not None
                                                                     else 0.0), r["id"]))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


__all__ = ["Decision", "Engine", "EngineOptions", "Summary", "open_store", "ranked", "signal_project", "summarize"]
