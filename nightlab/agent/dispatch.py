"""Dispatch: where a queued experiment's job runs, and what the engine asks about it there.

A job runs on a slot of this machine — leased machine-wide (sandbox/lease.py), so that projects running at once
never oversubscribe it — or, with `[backend] kind = "slurm" | "ray"`, on a cluster's scheduler (remote.py), which
decides where and when. This room holds both: starting an experiment on a free slot, handing queued experiments to
the scheduler up to the number it may hold, and asking the scheduler how its jobs stand, whether a job recorded
before a crash ever reached it, and how one ended when its wrapper could not say. A scheduler that is busy or
unreachable is never a failure: it is said once, nothing is decided, and it is asked again on the next tick.

Every start is written to the store before the process (or the submission) exists, so a crash in between is a
"launch interrupted" for the engine's reconcile. Which queued experiments may start — the run budget, the deadline,
the compute budget — and what a job's end means are the engine's state machine; this room only starts them where
they run and keeps its view of that place (the slot it waits for, the scheduler's last "busy").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.launcher import Launcher
from nightlab.agent.paths import StatePaths
from nightlab.agent.remote import Ended, RemoteJobs
from nightlab.agent.states import EventKind, FailureClass, JobState, RunResult, Status
from nightlab.agent.store import Experiment, Job, Store
from nightlab.errors import NightlabError
from nightlab.sandbox import lease, runner, slots
from nightlab.sandbox.backends import BackendError, SchedInfo, make_backend
from nightlab.sandbox.spec import LOG_FILE

__all__ = ["Dispatch"]


class Dispatch:
    """The machine's slots or the cluster's scheduler, for the session `sid()` names."""

    def __init__(self, root: Path, cfg: ProjectConfig, store: Store, launcher: Launcher, paths: StatePaths,
                 lock_path: Path, poll_s: float, sid: Callable[[], int], command_for: Callable[[Experiment], str],
                 emit: Callable[..., Any]) -> None:
        self.cfg, self.store, self.launcher = cfg, store, launcher
        self.sid, self.command_for, self.emit = sid, command_for, emit
        # the machine's slots, leased machine-wide so that projects running at once never oversubscribe it
        self.pool = lease.MachinePool(
            slots.discover(cfg.slots.cpus, cfg.slots.threads_per_job, cfg.slots.gpus), str(root),
            wake_argv=launcher.wake_argv(), signal_path=str(paths.signal), lock_path=str(lock_path))
        self.slot_wait = ""  # what was last said about waiting for another project's slot
        self.backend_wait = ""  # the scheduler's last "busy, try again" (the engine retries rather than sleeps)
        # scheduler jobs with a fresh status.json the scheduler does not confirm yet (RemoteJobs.believes): their
        # wrapper has already tried to wake the engine, so it stays awake and asks again
        self.unconfirmed: set[int] = set()
        # jobs on a cluster's scheduler instead of this machine's slots ([backend] kind = "slurm" | "ray")
        self.remote: RemoteJobs | None = None
        if cfg.backend.kind != "local":
            self.remote = RemoteJobs(root, store, make_backend(cfg.backend.settings()), poll_s=max(0.5, poll_s * 2))

    def parallel(self) -> int:
        """How many jobs may run at once: the free slots (capped by [search] parallel), or on a scheduler the number
        handed to it at once."""
        if self.remote is not None:  # the scheduler decides where and when; this caps what is handed to it
            return self.cfg.backend.max_jobs or self.cfg.search.parallel or 4
        n = self.pool.total
        if self.cfg.search.parallel:
            n = min(n, self.cfg.search.parallel)
        return n

    # ------------------------------------------------------------------------------------------- this machine
    def start(self, e: Experiment) -> bool:
        """Start `e` on a free slot of this machine; False when none is free (another project may hold it): it
        waits. A launch that fails is recorded as the experiment's failure (True: it was dealt with)."""
        slot = self.pool.acquire(self.pool.gpus_per_job(self.cfg.slots.gpus_per_job))
        if slot is None:
            waiting = self.pool.waiting_text()
            if waiting and waiting != self.slot_wait:
                self.emit(EventKind.SLOT_WAIT, f"#{e.id} waits for a machine slot: {waiting}", e.id)
            self.slot_wait = waiting
            return False
        self.slot_wait = ""
        try:
            self._launch(e, slot)
        except NightlabError as err:
            self.pool.release(slot.id)
            self._failed(e, err, "could not start")
        return True

    def _launch(self, e: Experiment, slot: slots.Slot) -> None:
        attempt = e.attempts + 1
        spec = self.launcher.prepare(e, slot, attempt, leases=self.pool.lease_paths(slot.id),
                                     lease_run=self.pool.run_of(slot.id), command=self.command_for(e))
        # recorded before the process starts: a crash in between is a "launch interrupted" for reconcile. The three
        # writes are one: a crash between them left an attempt counted with no budget spent, re-run as free
        with self.store.atomic():
            self.store.update_experiment(e.id, status=Status.RUNNING, attempts=attempt)
            job = self.store.add_job(e.id, spec.run_dir, str(Path(spec.run_dir) / LOG_FILE), slot.id)
            if attempt == 1:  # re-running a lost job spends no budget: the first try never produced a result
                self._count_run(+1)
        pids = self.launcher.start(spec)
        self.store.update_job(job.id, pid=pids.get("pid"), pid_start=pids.get("start"), state=JobState.RUNNING,
                              wrapper_pid=pids.get("wrapper_pid"), wrapper_start=pids.get("wrapper_start"))
        self.emit(EventKind.STARTED, f"#{e.id} started: {e.title} (seed {e.seed}, slot {slot.id})", e.id,
                  run_dir=spec.run_dir)

    def _count_run(self, step: int) -> None:
        self.store.update_session(self.sid(), runs_started=self.store.session(self.sid()).runs_started + step)

    def _failed(self, e: Experiment, err: Exception, what: str) -> None:
        """A job that could not start: recorded as the experiment's failure (a launch error), never retried."""
        self._record_failure(e, err)
        self.emit(EventKind.FAILED, f"#{e.id} {what}: {err}", e.id)

    def _record_failure(self, e: Experiment, err: Exception) -> None:
        self.store.update_experiment(e.id, status=Status.FAILED, run_result=RunResult.FAILED, error=str(err),
                                     failure_class=FailureClass.LAUNCH_ERROR, diagnosis=str(err))

    # ------------------------------------------------------------------------------------------- a scheduler
    def submit_queued(self, may_start: Callable[[Experiment], bool]) -> bool:
        """Hand queued experiments (those `may_start` lets go) to the cluster's scheduler, up to `parallel()` jobs in
        its hands at once; True if anything changed."""
        assert self.remote is not None
        progressed = False
        for e in self.store.experiments_in(Status.QUEUED):
            if not may_start(e):
                continue
            if len(self.store.open_jobs()) >= self.parallel():
                break
            attempt = e.attempts + 1
            try:
                spec = RemoteJobs.adapt(self.launcher.prepare(e, slots.Slot(id=self.remote.kind), attempt,
                                                              command=self.command_for(e)))
                # the attempt, its job (under the name it is submitted with) and the budget it spends land together
                with self.store.atomic():
                    self.store.update_experiment(e.id, status=Status.RUNNING, attempts=attempt)
                    job = self.remote.record(e, spec, attempt)
                    if attempt == 1:
                        self._count_run(+1)
                job = self.remote.hand_over(job)
            except BackendError as err:
                # the unsubmitted job's end and what becomes of the experiment land together too: a crash between
                # them left it running with no job, re-tried by reconcile as an interrupted launch (or given up)
                with self.store.atomic():
                    for j in self.store.open_jobs():
                        if j.experiment_id == e.id:
                            self.store.update_job(j.id, state=JobState.ENDED, ended=time.time(),
                                                  ending="not_submitted")
                    if err.transient:  # busy or unreachable for now: back to the queue as it was, asked again later
                        self.store.update_experiment(e.id, status=Status.QUEUED, attempts=attempt - 1)
                        if attempt == 1:
                            self._count_run(-1)
                    else:  # refused (a bad partition, no such resource): recorded, never retried
                        self._record_failure(e, err)
                if err.transient:
                    if not self.backend_wait:
                        self.emit(EventKind.BACKEND_WAIT, f"#{e.id} waits for the scheduler: {err}", e.id)
                    self.backend_wait = str(err)
                    break
                self.emit(EventKind.FAILED, f"#{e.id} could not be submitted: {err}", e.id)
            except NightlabError as err:
                self._failed(e, err, "could not start")
            else:
                self.backend_wait = ""
                self.emit(EventKind.STARTED, f"#{e.id} submitted: {e.title} (seed {e.seed}, {job.where})", e.id,
                          run_dir=spec.run_dir)
            progressed = True
        return progressed

    def follow(self, jobs: list[Job]) -> dict[int, SchedInfo]:
        """What the scheduler says of the open jobs on it (by job id); {} when none is there or it cannot be asked."""
        if self.remote is None or not any(j.remote for j in jobs):
            return {}
        try:
            return self.remote.follow(jobs)
        except BackendError as err:  # the scheduler is unreachable for now: nothing is decided, ask again later
            self.emit(EventKind.BACKEND_ERROR, f"cannot ask the scheduler: {err}")
            return {}

    def ending(self, job: Job, status: runner.JobStatus | None, scheduler: dict[int, SchedInfo]) -> Ended | None:
        """How a scheduler's job ended when its wrapper could not say (or said only "stopped from outside")."""
        if self.remote is None:
            return None
        try:
            if status is not None:
                return self.remote.outside_stop(job, status)
            info = scheduler.get(job.id)
            return None if info is None else self.remote.ending_status(job, info)
        except BackendError as err:
            self.emit(EventKind.BACKEND_ERROR, f"cannot ask the scheduler about #{job.experiment_id}: {err}",
                      job.experiment_id)
            return None

    def never_submitted(self, job: Job) -> bool:
        """A scheduler's job after a restart: True when it never reached the scheduler (it goes back to the queue:
        it cannot run twice); its submission is found again by name if the engine died before recording it. False
        too when the scheduler cannot be asked now (said; asked again later)."""
        assert self.remote is not None
        try:
            return not self.remote.recover(job)
        except BackendError as err:
            self.emit(EventKind.BACKEND_ERROR, f"cannot ask the scheduler about #{job.experiment_id}: {err}",
                      job.experiment_id)
            return False

    def stop(self, job: Job, reason: str) -> bool:
        """Stop a running job wherever it runs; on a scheduler the stop file reaches the job's wrapper on its node
        (the run dir is shared)."""
        if job.remote and self.remote is not None:
            return self.remote.cancel(job, reason)
        return runner.stop(job.run_dir, reason, job.wrapper)
