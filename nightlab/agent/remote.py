"""Jobs on a scheduler (SLURM, Ray): submitting a prepared run, following it, and reading how it ended when its
wrapper could not say so itself.

The engine records a job before it is submitted (state `starting`, the name it will be submitted under), then
submits, then records the scheduler's id: a crash in between is repaired by `recover`, which finds the submission by
its name or, when there is none, reports the job as never started (re-queued, never run twice). While a job has no
`status.json`, `follow` asks the scheduler (one query for every open job, at most every `poll_s` seconds) and keeps
the store's view current: queued or running, on which node, and when the wrapper really started (from `pid.json`,
which the wrapper writes on the node; queued time = that minus the submission time). When the scheduler is done with
a job whose wrapper left no status — the node went down, it was pre-empted, cancelled while queued, killed at the
scheduler's time limit, or the wrapper could not start — `ending_status` turns the scheduler's account into the
status the wrapper would have written, and says whether running the experiment again is safe.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nightlab.agent.states import JobState
from nightlab.agent.store import Experiment, Job, Store
from nightlab.sandbox import runner
from nightlab.sandbox.backends import RETRYABLE, Backend, BackendError, Ending, SchedInfo, SchedState
from nightlab.sandbox.spec import JobEnd, JobSpec, JobStatus

# a job the scheduler calls ended may still be writing its status over a shared file system: wait this long for it
STATUS_GRACE_S = 15.0
# the scheduler's words for a job whose batch script (the wrapper) has exited while the scheduler tidies up
WRAPPER_GONE = {"COMPLETING", "STAGE_OUT"}
# variables the job takes from its node rather than from the engine's machine (which GPUs the scheduler gave it)
NODE_VARS = ["CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_NODELIST",
             "SLURM_CPUS_PER_TASK", "RAY_JOB_ID"]
LOCAL_SLOT_VARS = ("CUDA_VISIBLE_DEVICES", "NIGHTLAB_JOB_CPUS", "NIGHTLAB_JOB_SLOT")


@dataclass
class Ended:
    """A job the scheduler finished without the wrapper's status: what to record, and whether to run it again."""

    status: JobStatus
    retry: bool
    why: str


class RemoteJobs:
    def __init__(self, root: Path, store: Store, backend: Backend, poll_s: float = 2.0) -> None:
        self.root = Path(root)
        self.store = store
        self.backend = backend
        self.poll_s = poll_s
        self._asked_at = 0.0
        self._last: dict[int, SchedInfo] = {}

    @property
    def kind(self) -> str:
        return str(self.backend.kind)

    def name(self, exp_id: int, attempt: int) -> str:
        """The submission's name: unique per project, experiment and attempt (found again after a crash)."""
        tag = hashlib.sha1(str(self.root).encode()).hexdigest()[:8]
        return f"nightlab-{tag}-{exp_id}-{attempt}"

    @staticmethod
    def adapt(spec: JobSpec) -> JobSpec:
        """A spec prepared for a local slot, made fit for a node: the node's scheduler decides the GPUs and CPUs."""
        for var in LOCAL_SLOT_VARS:
            spec.env.pop(var, None)
        spec.inherit = list(NODE_VARS)
        spec.leases, spec.lease_run = [], ""
        return spec

    def record(self, e: Experiment, spec: JobSpec, attempt: int) -> Job:
        """Record the job under the name it will be submitted with, before it is (see `recover`). The caller writes
        it in one transaction with the attempt it belongs to: a job row without its backend reads as a local job,
        which reconcile would call lost for want of a process."""
        run_dir = Path(spec.run_dir)
        spec.write(run_dir / "spec.json")
        job = self.store.add_job(e.id, str(run_dir), str(run_dir / "output.log"), None)
        self.store.update_job(job.id, backend=self.kind, sched_name=self.name(e.id, attempt))
        return self.store.job(job.id)

    def hand_over(self, job: Job) -> Job:
        """Submit a recorded job to the scheduler and record the id it was given."""
        sched_id = self.backend.submit(job.run_dir, job.sched_name or "")
        self.store.update_job(job.id, sched_id=sched_id, state=JobState.RUNNING, sched_state=SchedState.QUEUED)
        return self.store.job(job.id)

    def recover(self, job: Job) -> bool:
        """A job recorded but maybe never submitted (the engine died in between): True if the scheduler has it."""
        if job.sched_id:
            return True
        found = self.backend.find(job.sched_name or "")
        if found is None:
            return False
        self.store.update_job(job.id, sched_id=found, state=JobState.RUNNING)
        return True

    def follow(self, jobs: list[Job], force: bool = False) -> dict[int, SchedInfo]:
        """The scheduler's view of these open jobs (cached for `poll_s`); the store is updated as it changes."""
        # jobs whose wrapper left a status too: the scheduler confirms it has exited (`believes`)
        asking = [j for j in jobs if j.remote and j.sched_id]
        if not asking:
            return {}
        if not force and time.monotonic() - self._asked_at < self.poll_s:
            return {j.id: self._last[j.id] for j in asking if j.id in self._last}
        self._asked_at = time.monotonic()
        infos = self.backend.query([str(j.sched_id) for j in asking])
        out: dict[int, SchedInfo] = {}
        for j in asking:
            info = infos.get(str(j.sched_id), SchedInfo(SchedState.UNKNOWN))
            out[j.id] = info
            changes: dict[str, object] = {}
            if info.state != j.sched_state:
                changes["sched_state"] = str(info.state)
            if info.node and info.node != j.node:
                changes["node"] = info.node
            if j.run_started is None:
                pids = runner.read_pids(j.run_dir)
                if pids is not None and pids.get("started_at"):
                    changes["run_started"] = float(pids["started_at"])
            if changes:
                self.store.update_job(j.id, **changes)
        self._last = out
        return out

    @staticmethod
    def believes(info: SchedInfo | None) -> bool:
        """Whether a status.json in a scheduler job's run dir may be believed: only once the scheduler no longer
        runs the wrapper. The wrapper writes its status last and exits; on a node with layer 0 only (no sandbox)
        the job can write the run dir and forge one while it still runs (on this machine `runner.read_status`
        checks the wrapper's process; on a node only the scheduler knows). Without the scheduler's word (it could
        not be asked) the status is believed."""
        if info is None or info.state not in (SchedState.QUEUED, SchedState.RUNNING):
            return True
        return info.native in WRAPPER_GONE

    @staticmethod
    def status_fresh(job: Job) -> bool:
        """Whether the run dir's status was written moments ago: a wrapper exits right after writing it, so the
        engine waits for the scheduler to confirm that; an older one that is still not confirmed is forged, and
        the engine may hibernate (the wrapper's own status wakes it)."""
        try:
            return time.time() - os.lstat(Path(job.run_dir, runner.STATUS_FILE)).st_mtime < STATUS_GRACE_S
        except OSError:
            return False

    def ending_status(self, job: Job, info: SchedInfo) -> Ended | None:
        """How a job the scheduler is done with ended, when its wrapper wrote no status (None: wait longer)."""
        if runner.read_status(job.run_dir) is not None:
            return None
        if info.state == SchedState.UNKNOWN:
            return self._ended(job, Ending.NODE_FAILURE, f"{self.backend.where(str(job.sched_id))} is unknown to "
                                                         "the scheduler and left no status", retry=True)
        asked = _stop_reason(job)
        if asked and info.state == SchedState.QUEUED:
            # cancelled while queued: the stop file keeps it from ever running, whatever the scheduler does with it
            # (Ray cannot withdraw a pending job, ray-project/ray#58353)
            return self._ended(job, Ending.CANCELLED, asked, retry=False)
        if info.state != SchedState.ENDED or info.ending is None:
            return None
        if info.ended_at is not None and time.time() - info.ended_at < STATUS_GRACE_S \
                and info.ending == Ending.COMPLETED:
            return None  # its status may still be on its way over the shared file system
        word = f"{self.kind} {info.native}" + (f" ({info.reason})" if info.reason else "")
        if info.ending in RETRYABLE:
            return self._ended(job, info.ending, f"{info.ending.value.replace('_', ' ')}: {word}", retry=True)
        if info.ending == Ending.CANCELLED:
            return self._ended(job, info.ending, asked or f"cancelled outside nightlab: {word}", retry=False)
        if info.ending == Ending.TIMED_OUT:
            return self._ended(job, info.ending, f"the scheduler's time limit: {word}", retry=False)
        if info.ending == Ending.COMPLETED:  # ended cleanly yet no status: the run dir is not shared, or was lost
            return self._ended(job, Ending.NODE_FAILURE, f"{word} but no status.json in {job.run_dir} (is the "
                                                         "project folder shared with the nodes?)", retry=True)
        return self._ended(job, info.ending, f"the job wrapper did not run: {word}; {_scheduler_log(job)}".strip(),
                           retry=False)

    def outside_stop(self, job: Job, status: JobStatus) -> Ended | None:
        """A run stopped by a signal nightlab never sent (a node going down, a pre-emption, someone's scancel, the
        scheduler's time limit) — the scheduler signals the job's processes as well as the wrapper, so either may
        have noticed first. The scheduler's account decides what is recorded; a node failure or pre-emption runs
        the experiment again."""
        import signal as signals

        killers = (signals.SIGTERM, signals.SIGKILL, signals.SIGINT)
        # killed outright, or a shell in between that reports its child's death as 128 + the signal
        by_signal = status.signal in killers or status.exit_code in {128 + int(k) for k in killers}
        stopped = status.state == JobEnd.KILLED and status.reason.endswith("from outside nightlab")
        if not (stopped or (status.state == JobEnd.FAILED and by_signal)) or _stop_reason(job):
            return None
        info = self.follow([job], force=True).get(job.id)
        if info is None:
            info = self.backend.query([str(job.sched_id)]).get(str(job.sched_id))
        if info is None or info.ending is None:
            return None
        word = f"{self.kind} {info.native}" + (f" ({info.reason})" if info.reason else "")
        self.store.update_job(job.id, ending=str(info.ending))
        if info.ending in RETRYABLE:
            return Ended(status, True, f"{info.ending.value.replace('_', ' ')}: {word}")
        if info.ending == Ending.CANCELLED:
            status.state, status.reason = "killed", f"cancelled outside nightlab: {word}"
            return Ended(status, False, status.reason)
        if info.ending == Ending.TIMED_OUT:
            status.state, status.reason = "timed_out", f"the scheduler's time limit: {word}"
            return Ended(status, False, status.reason)
        return None

    def _ended(self, job: Job, ending: Ending, why: str, retry: bool) -> Ended:
        state = {Ending.CANCELLED: "killed", Ending.TIMED_OUT: "timed_out"}.get(ending, "failed")
        now = time.time()
        started = job.run_started or job.started or now
        status = JobStatus(job_id=str(job.experiment_id), state=state, exit_code=None, signal=None,
                           started_at=started, ended_at=now, seconds=round(max(0.0, now - started), 3), pid=0,
                           pid_start_time=None, isolation=[], reason=why)
        self.store.update_job(job.id, ending=str(ending))
        return Ended(status, retry, why)

    def cancel(self, job: Job, reason: str) -> bool:
        """Stop a job wherever it is: the stop file (the wrapper stops its job cleanly, or never starts it), and the
        scheduler's cancel for a job still in its queue. False when there is nothing to stop."""
        info = self.follow([job], force=True).get(job.id)
        if runner.read_status(job.run_dir) is not None and self.believes(info):
            return False
        runner.request_stop(job.run_dir, reason)
        if job.sched_id and (info is None or info.state == SchedState.QUEUED):
            try:
                self.backend.cancel(str(job.sched_id))
            except BackendError:
                pass  # the stop file still keeps it from running
        return True


def _stop_reason(job: Job) -> str:
    from nightlab.sandbox import safeio

    try:  # a regular file only, bounded: the run dir is shared with a node nightlab does not control
        return safeio.read_bytes(Path(job.run_dir, runner.STOP_FILE), 500).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _scheduler_log(job: Job) -> str:
    """The last line the scheduler wrote for the job (sbatch's output file), if any."""
    from nightlab.sandbox.backends.slurm import SCHEDULER_LOG

    text = runner.read_tail(Path(job.run_dir) / SCHEDULER_LOG, 4096).strip().splitlines()
    return text[-1][:200] if text else ""


def stop_job(root: Path, job: Job, reason: str) -> bool:
    """Stop one running job, local or on a scheduler (the one path for `nightlab stop` and the TUI)."""
    if not job.remote:
        return runner.stop(job.run_dir, reason, job.wrapper)
    from nightlab.agent.config import load_config
    from nightlab.agent.paths import StatePaths
    from nightlab.sandbox.backends import make_backend

    cfg = load_config(root)
    store = Store(StatePaths.of(root).db)
    return RemoteJobs(root, store, make_backend(cfg.backend.settings())).cancel(job, reason)


__all__ = ["Ended", "RemoteJobs", "stop_job"]
