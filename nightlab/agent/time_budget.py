"""The session's time: a deadline (`nightlab run --hours H` / `--until HH:MM`) and a compute budget
(`[autonomy] max_cpu_hours` / `max_gpu_hours`).

The engine asks `blocks(e)` before it starts a run: a run whose own predicted duration would end after the deadline,
or whose predicted compute would take the session past its budget, is not started (it stays queued for the next
session). A run's duration is its own prediction where one was made (the builtin policy's cost model: a
widening or a longer training costs more than the run it changes, fewer epochs or a narrower model less, a
same-shape knob move about the same; a change of the code — a transform, a repair, a language model's edit — its
parent's time scaled by the model's cost read from the code after the edit over before it), plus what runs take
beyond their own seconds here (launch, sandbox start-up, a scheduler's queue, as measured: `overhead`); else (the
code's structure could not be read: `Pricing.PARENT`, said in the reason) its parent's measured wall clock (the
run it changes, or the run it repeats with another seed), else the median of the project's ended runs; with
nothing measured yet (the baseline) it is started if any time is left.

The policy is told how long a run started now may take (`seconds_left`, in its own run seconds), so that when time is
short it proposes runs that fit and skips, with the reason said, those that cannot. The session ends when nothing can
start any more: the deadline has passed or the budget is spent, or the cheapest candidate the policy found
(`floor`, set by the engine when it proposes nothing that fits) no longer fits. At the deadline, runs still going (a
prediction that was wrong) are stopped and re-queued, so the session ends in time.

On a scheduler (SLURM, Ray) the same check comes before a job is submitted. How long the job will wait in the
queue cannot be known then; it is assumed to wait as the project's earlier jobs there did: a run's measured wall clock
runs from its submission to its end, so the parent's duration and the overhead (wall clock minus the run's own
seconds) carry the queue waits measured so far; with none measured, no wait is assumed. A job still queued or running
there at the deadline (a wait or a run longer than predicted) is withdrawn as a local one is stopped: the stop file
its wrapper polls on the node, and the scheduler's cancel while it is still queued; it is re-queued for the next
session.

Compute is counted per run as its seconds times what that run got: on this machine, the CPU threads of a job
(`[slots] threads_per_job`) and the GPUs of the slot it was given (its id names them: `gpu0`, `gpu0+gpu1`); on a
cluster, the CPUs and GPUs the scheduler was asked for (`[backend] cpus_per_job` / `gpus_per_job`), from when the
job started on its node (its time in the queue uses nothing). A run not started yet is predicted to get what the
engine will ask for (`gpus_per_job`).

With `[autonomy] ask_over_budget` the compute budget is a checkpoint rather than an end: when no run can start within
it, the session asks (a `compute` approval with the reason) and waits; each yes grants one budget more, counted from
what the session had spent when it was given (runs still going at the ask may end past the old limit: a yes must
still leave room for a run, or it would be asked again at once), a no ends the session as without the checkpoint.
A yes always buys at least one run: until a run starts after it, nothing is over the budget (a run that costs more
than a whole budget — a budget set small, runs slowed by a busy machine — would otherwise be asked about forever).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent.states import ApprovalKind, ApprovalState, JobState, Kind, Pricing, RunResult
from nightlab.agent.store import Experiment, Job, Store
from nightlab.sandbox import slots
from nightlab.sandbox.spec import SPEC_FILE, JobSpec

STOP_REASON = "deadline"  # the reason a run still going at the deadline is stopped with


@dataclass
class TimeBudget:
    store: Store
    deadline: float | None  # epoch seconds; None = no deadline
    max_cpu_hours: float | None
    max_gpu_hours: float | None
    cpus_per_job: int = 1  # CPU threads of the next run
    gpus_per_job: int = 0  # GPUs of the next run (what the engine asks the slots or the scheduler for)
    ask_over_budget: bool = False
    remote_cpus: int = 1  # what a job on a scheduler was given ([backend] cpus_per_job / gpus_per_job)
    remote_gpus: int = 0
    # the cheapest run the policy could propose when it found none that fits (its predicted seconds, overhead
    # included); None: it has not said. `blocks(None)` judges the session's next run by it
    floor: float | None = None
    _gpus: dict[int, int] = field(default_factory=dict, repr=False)  # job id -> GPUs it was given (never changes)

    @property
    def active(self) -> bool:
        return self.deadline is not None or self.max_cpu_hours is not None or self.max_gpu_hours is not None

    def predict(self, e: Experiment | None) -> float | None:
        """Wall-clock seconds the run is expected to take, from launch to end (sandbox start-up included): the
        policy's own prediction of it plus the measured overhead; else its parent's measured run (the run it
        changes, or repeats with another seed), else the median of the project's ended runs; None when nothing has
        been measured. For `None`, the session's next run: the cheapest candidate the policy found (`floor`), None
        when it has not said."""
        if e is None:
            return self.floor
        ref = e.rerun_of if e.kind == Kind.RERUN else e.parent_id
        if e.predicted_s and e.predicted_s > 0 and e.kind != Kind.RERUN:
            return e.predicted_s + self.overhead(ref)
        if ref is not None:
            mine = self._wall(self.store.jobs(experiment_id=ref))
            if mine:
                return max(mine)
        walls = self._wall(self.store.jobs())
        return float(statistics.median(walls)) if walls else None

    def overhead(self, ref: int | None = None) -> float:
        """Seconds a run takes beyond its own (what the policy predicts): the engine's launch and collection, the
        sandbox's start-up, a scheduler's queue — wall clock minus the run's seconds, of experiment `ref`'s runs
        where measured, else the median over the project's; 0 with nothing measured."""
        def gaps(jobs: list[Job]) -> list[float]:
            out = []
            for j in jobs:
                if j.state != JobState.ENDED or not j.started or not j.ended:
                    continue
                e = self.store.find_experiment(j.experiment_id)
                if e is not None and e.seconds and e.run_result in (RunResult.SUCCEEDED, RunResult.FAILED):
                    out.append(max(0.0, j.ended - j.started - e.seconds))
            return out

        mine = gaps(self.store.jobs(experiment_id=ref)) if ref is not None else []
        if mine:
            return max(mine)
        every = gaps(self.store.jobs())
        return float(statistics.median(every)) if every else 0.0

    def seconds_left(self, session_id: int, now: float | None = None) -> float | None:
        """Wall-clock seconds a run started now may take: to the deadline, and what the compute budget has left for
        one run's share (its CPU threads, its GPUs); None without a deadline or a budget."""
        if not self.active:
            return None
        now = time.time() if now is None else now
        left: list[float] = []
        if self.deadline is not None:
            left.append(self.deadline - now)
        if (self.max_cpu_hours is not None or self.max_gpu_hours is not None) and not self._yes_unspent(session_id):
            cpu_limit, gpu_limit = self.limits(session_id)
            cpu, gpu = self.spent(session_id, now)
            going_cpu, going_gpu = self.committed(session_id, now)
            if cpu_limit is not None:
                left.append((cpu_limit - cpu - going_cpu) * 3600 / max(1, self.cpus_per_job))
            if gpu_limit is not None and self.gpus_per_job:
                left.append((gpu_limit - gpu - going_gpu) * 3600 / self.gpus_per_job)
        return max(0.0, min(left)) if left else None

    def run_seconds_left(self, session_id: int, now: float | None = None) -> float | None:
        """What `seconds_left` leaves for a run's own seconds (the measured overhead taken off): what the policy is
        told a candidate's predicted run time must fit in."""
        left = self.seconds_left(session_id, now)
        return None if left is None else max(0.0, left - self.overhead())

    def _wall(self, jobs: list[Job]) -> list[float]:
        """Wall times of jobs that ran to their own end (not lost, not stopped early: those say nothing of length)."""
        out = []
        for j in jobs:
            if j.state != JobState.ENDED or not j.started or not j.ended or j.ended <= j.started:
                continue
            e = self.store.find_experiment(j.experiment_id)
            if e is not None and e.run_result in (RunResult.SUCCEEDED, RunResult.FAILED):
                out.append(j.ended - j.started)
        return out

    def spent(self, session_id: int, now: float | None = None) -> tuple[float, float]:
        """CPU-hours and GPU-hours the session's runs have used until `now` (running ones until now; a run that
        ended later counted until `now`, one started later not at all: what was spent at an earlier moment)."""
        now = time.time() if now is None else now
        cpu = gpu = 0.0
        for e in self.store.experiments("session_id = ?", (session_id,)):
            for j in self.store.jobs(experiment_id=e.id):
                end = min(j.ended, now) if j.ended else now
                began = (j.run_started or end) if j.remote else (j.started or end)  # a queued job uses nothing
                seconds = max(0.0, end - began)
                cpus, gpus = self.share(j)
                cpu += seconds * cpus
                gpu += seconds * gpus
        return cpu / 3600, gpu / 3600

    def share(self, job: Job) -> tuple[int, int]:
        """The CPU threads and GPUs a job got: a scheduler's job what it was asked for; a local one the GPUs its
        spec made visible to it (CUDA_VISIBLE_DEVICES: a CPU job given a GPU machine's slot sees none), else, with
        the spec gone, the GPUs its slot's id names, and the threads a job runs with."""
        if job.remote:
            return self.remote_cpus, self.remote_gpus
        if job.id in self._gpus:
            return self.cpus_per_job, self._gpus[job.id]
        visible = spec_gpus(job)
        if visible is None:  # no spec (not written yet, or gone): the GPUs its slot names
            return self.cpus_per_job, len(slots.gpus_of(job.slot or ""))
        self._gpus[job.id] = visible
        return self.cpus_per_job, visible

    def blocks(self, e: Experiment | None, session_id: int, now: float | None = None) -> str | None:
        """Why the run (None: the session's next run, the cheapest the policy could propose) cannot be started (it
        would not end in time, or would go past the compute budget); None if it can."""
        if not self.active:
            return None
        now = time.time() if now is None else now
        need = self.predict(e) or 0.0
        if e is None:
            what = "the cheapest run the policy could propose takes"
        elif e.predicted_s and e.kind != Kind.RERUN:
            what = "this run is predicted to take"
        else:
            what = "a run takes"
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                return "the deadline has passed"
            if need > left:
                how = " (measured)" if what == "a run takes" else ""
                if what == "a run takes" and e is not None and e.priced == Pricing.PARENT:
                    how = " (its parent's, measured: the change's cost could not be read from the code)"
                return f"{what} about {need:.0f} s{how} and {left:.0f} s are left before the deadline"
        why = self.over_budget(need, session_id, now)
        if why and need and what != "a run takes":
            return f"{what} about {need:.0f} s (predicted): {why}"
        return why

    def extensions(self, session_id: int) -> int:
        """How many times a person let the session go over its compute budget (approved `compute` requests)."""
        return len(self._yeses(session_id))

    def _yeses(self, session_id: int) -> list[float]:
        """When each approved `compute` request was decided, in order."""
        return [a.decided or a.created
                for a in self.store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=session_id)
                if a.state == ApprovalState.APPROVED]

    def _yes_unspent(self, session_id: int) -> bool:
        """Whether a person said yes to going over the compute budget and no run has started (or been handed to a
        scheduler) since: that yes buys the next run whatever it costs."""
        yeses = self._yeses(session_id) if self.ask_over_budget else []
        return bool(yeses) and not any(j.started is not None and j.started >= yeses[-1]
                                       for e in self.store.experiments("session_id = ?", (session_id,))
                                       for j in self.store.jobs(experiment_id=e.id))

    def limits(self, session_id: int) -> tuple[float | None, float | None]:
        """The CPU-hours and GPU-hours the session may spend: the budget, and with `ask_over_budget` one budget
        more for each yes, counted from the larger of the limit before it and what had been spent when it was
        given (runs going at the ask can end past the old limit; the yes still buys a budget's worth of runs)."""
        cpu_limit, gpu_limit = self.max_cpu_hours, self.max_gpu_hours
        if not self.ask_over_budget:
            return cpu_limit, gpu_limit
        for when in self._yeses(session_id):
            cpu, gpu = self.spent(session_id, when)
            if cpu_limit is not None and self.max_cpu_hours is not None:
                cpu_limit = max(cpu_limit, cpu) + self.max_cpu_hours
            if gpu_limit is not None and self.max_gpu_hours is not None:
                gpu_limit = max(gpu_limit, gpu) + self.max_gpu_hours
        return cpu_limit, gpu_limit

    def over_budget(self, need: float, session_id: int, now: float | None = None) -> str | None:
        """Why a run of `need` seconds would take the session past its compute budget (None: it would not)."""
        if self.max_cpu_hours is None and self.max_gpu_hours is None:
            return None
        if self._yes_unspent(session_id):
            return None  # the run the person said yes to, whatever it costs
        yeses = self.extensions(session_id) if self.ask_over_budget else 0
        cpu_limit, gpu_limit = self.limits(session_id)
        cpu, gpu = self.spent(session_id, now)
        going_cpu, going_gpu = self.committed(session_id, now)

        def extended(limit: float) -> str:
            return f" (extended to {limit:.3g} by {yeses} yes{'es' if yeses > 1 else ''})" if yeses else ""

        if self.max_cpu_hours is not None and cpu_limit is not None:
            more = need * self.cpus_per_job / 3600
            if cpu + going_cpu + more > cpu_limit or cpu >= cpu_limit:
                going = f" (and about {going_cpu:.2g} more for the runs going)" if going_cpu else ""
                return f"{cpu:.3g} CPU-hours spent{going}, about {more:.2g} more would pass max_cpu_hours = " \
                       f"{self.max_cpu_hours:g}" + extended(cpu_limit)
        if self.max_gpu_hours is not None and gpu_limit is not None:
            more = need * self.gpus_per_job / 3600
            if gpu + going_gpu + more > gpu_limit or (self.gpus_per_job and gpu >= gpu_limit):
                going = f" (and about {going_gpu:.2g} more for the runs going)" if going_gpu else ""
                return f"{gpu:.3g} GPU-hours spent{going}, about {more:.2g} more would pass max_gpu_hours = " \
                       f"{self.max_gpu_hours:g}" + extended(gpu_limit)
        return None

    def committed(self, session_id: int, now: float | None = None) -> tuple[float, float]:
        """CPU-hours and GPU-hours the session's runs still going are predicted to use before they end (their
        predicted duration less what they ran so far): with several runs at once, a run that starts now shares the
        budget with them. A job waiting in a scheduler's queue has used nothing yet."""
        now = time.time() if now is None else now
        cpu = gpu = 0.0
        for j in self.store.open_jobs():
            e = self.store.find_experiment(j.experiment_id)
            if e is None or e.session_id != session_id:
                continue
            began = j.run_started if j.remote else j.started
            rest = max(0.0, (self.predict(e) or 0.0) - (now - began if began else 0.0))
            cpus, gpus = self.share(j)
            cpu += rest * cpus
            gpu += rest * gpus
        return cpu / 3600, gpu / 3600

    def asking(self, session_id: int, now: float | None = None) -> str | None:
        """With `ask_over_budget`, when it is the compute budget (not the deadline) that stops the next run: the
        reason a person is asked (asked once: a request is added when none is pending), else None — and None
        once they said no (the session then ends as without the checkpoint)."""
        if not self.ask_over_budget:
            return None
        now = time.time() if now is None else now
        if self.deadline is not None and self.deadline - now <= (self.floor or 0.0):
            return None  # the deadline stops it anyway
        # the requests are read before the budget is: a yes given in between then shows as a pending request (no
        # second one is added with the reason from before the yes), and the next call sees the extended budget
        mine = self.store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=session_id)
        if mine and mine[-1].state == ApprovalState.REJECTED:
            return None
        why = self.over_budget(self.floor or 0.0, session_id, now)
        if why is None:
            return None
        if not mine or mine[-1].state != ApprovalState.PENDING:
            self.store.add_approval(ApprovalKind.COMPUTE, {"reason": f"{why} ([autonomy] ask_over_budget)"},
                                    session_id, None)
        return why

    def overdue(self, now: float | None = None) -> bool:
        return self.deadline is not None and (time.time() if now is None else now) >= self.deadline


def spec_gpus(job: Job) -> int | None:
    """How many GPUs a job on this machine was given: those its spec made visible (None: no readable spec)."""
    try:
        visible = JobSpec.read(Path(job.run_dir) / SPEC_FILE).env.get("CUDA_VISIBLE_DEVICES")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if not isinstance(visible, str) else len([g for g in visible.split(",") if g.strip()])


__all__ = ["STOP_REASON", "TimeBudget", "spec_gpus"]
