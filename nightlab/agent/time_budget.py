"""The session's time: a deadline (`nightlab run --hours H` / `--until HH:MM`) and a compute budget
(`[autonomy] max_cpu_hours` / `max_gpu_hours`).

The engine asks `blocks(e)` before it starts a run: a run whose predicted duration would end after the deadline, or
whose predicted compute would take the session past its budget, is not started (it stays queued for the next
session), and the session ends once nothing runs. A run's duration is predicted from measured ones: its parent's
(the run it changes, or the run it repeats with another seed), else the median of the project's ended runs, wall
clock from launch to end; with nothing measured yet (the baseline) it is started if any time is left. At the
deadline, runs still going (a prediction that was wrong) are stopped and re-queued, so the session ends in time.

Compute is counted per run as its seconds times the CPU threads and GPUs its slot has (`[slots]`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from nightlab.agent.states import JobState, Kind, RunResult
from nightlab.agent.store import Experiment, Job, Store

STOP_REASON = "deadline"  # the reason a run still going at the deadline is stopped with


@dataclass
class TimeBudget:
    store: Store
    deadline: float | None  # epoch seconds; None = no deadline
    max_cpu_hours: float | None
    max_gpu_hours: float | None
    cpus_per_job: int = 1
    gpus_per_job: int = 0

    @property
    def active(self) -> bool:
        return self.deadline is not None or self.max_cpu_hours is not None or self.max_gpu_hours is not None

    def predict(self, e: Experiment | None) -> float | None:
        """Wall-clock seconds the run is expected to take, from launch to end (sandbox start-up included): its
        parent's measured run (the run it changes, or repeats with another seed), else the median of the project's
        ended runs (for `None`, a run not proposed yet: that median); None when nothing has been measured."""
        ref = None if e is None else e.rerun_of if e.kind == Kind.RERUN else e.parent_id
        if ref is not None:
            mine = self._wall(self.store.jobs(experiment_id=ref))
            if mine:
                return max(mine)
        walls = self._wall(self.store.jobs())
        return float(statistics.median(walls)) if walls else None

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
        """CPU-hours and GPU-hours the session's runs have used so far (running ones until now)."""
        now = time.time() if now is None else now
        seconds = 0.0
        for e in self.store.experiments("session_id = ?", (session_id,)):
            for j in self.store.jobs(experiment_id=e.id):
                end = j.ended if j.ended else now
                seconds += max(0.0, end - (j.started or end))
        return seconds * self.cpus_per_job / 3600, seconds * self.gpus_per_job / 3600

    def blocks(self, e: Experiment | None, session_id: int, now: float | None = None) -> str | None:
        """Why the run (None: a typical next run) cannot be started (it would not end in time, or would go past the
        compute budget); None if it can."""
        if not self.active:
            return None
        now = time.time() if now is None else now
        predicted = self.predict(e)
        need = predicted or 0.0
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                return "the deadline has passed"
            if need > left:
                return f"a run takes about {need:.0f} s (measured) and {left:.0f} s are left before the deadline"
        cpu, gpu = self.spent(session_id, now)
        if self.max_cpu_hours is not None:
            more = need * self.cpus_per_job / 3600
            if cpu + more > self.max_cpu_hours or cpu >= self.max_cpu_hours:
                return f"{cpu:.3g} CPU-hours spent, about {more:.2g} more would pass max_cpu_hours = " \
                       f"{self.max_cpu_hours:g}"
        if self.max_gpu_hours is not None and self.gpus_per_job:
            more = need * self.gpus_per_job / 3600
            if gpu + more > self.max_gpu_hours or gpu >= self.max_gpu_hours:
                return f"{gpu:.3g} GPU-hours spent, about {more:.2g} more would pass max_gpu_hours = " \
                       f"{self.max_gpu_hours:g}"
        return None

    def overdue(self, now: float | None = None) -> bool:
        return self.deadline is not None and (time.time() if now is None else now) >= self.deadline


__all__ = ["STOP_REASON", "TimeBudget"]
