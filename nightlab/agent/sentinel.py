"""The watch over a hibernating session's jobs on a cluster: who wakes the engine when no wrapper lives to do it.

A job on SLURM or Ray wakes its hibernating engine itself: its wrapper starts `nightlab wake` as it ends. When the
node under it goes away (powered off, its raylet or job supervisor killed, the wrapper OOM-killed), nothing on the
node lives to do that, and the session would sleep until someone ran `nightlab wake` by hand. So an engine that
hibernates with jobs on a scheduler leaves this small process behind (one per project, detached from the terminal):
every `[backend] watch_s` seconds it asks the scheduler about the session's open jobs — one query, no engine, no
training code — and when the scheduler says one has ended or no longer knows it, it starts `nightlab wake`, which
reads the scheduler's account and records a node failure, a pre-emption or a cancel, and runs the experiment again
where that is safe. It exits when the session is no longer hibernating with open cluster jobs.

Waking is idempotent (a wake that finds an engine awake does nothing; one that finds nothing new hibernates again),
so the watch needs no lock of the engine's, only one of its own: `.nightlab/sentinel.lock`, held for its life, so a
second engine hibernating does not start a second watch.

The same watch keeps early stopping going while the engine sleeps (local jobs and cluster jobs alike: a run's log
is in its run folder). Every `[autonomy] early_stop_check_s` seconds it reads each running job's curve and judges it
with the engine's own rule (`early_stop.EarlyStopper`); when one should stop, it wakes the engine, whose first look
(`Engine._watch`) judges it again, writes the evidence and stops it. The watch decides nothing itself: it only
reads, and the one place that stops a run early stays the engine's.

It keeps the session's deadline (`run --hours` / `--until`) the same way: a session that hibernates with jobs going
and a deadline has a watch, which wakes the engine once the deadline has come; the engine stops what still runs
(here or on a scheduler) and re-queues it, as it does awake.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from nightlab.agent import early_stop, sessions
from nightlab.agent.config import ProjectConfig, load_config
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import JobState, SessionState
from nightlab.agent.store import Job, Store
from nightlab.errors import NightlabError
from nightlab.sandbox.backends import BackendError, BackendKind, SchedState, make_backend

LOCK_NAME = "sentinel.lock"
LOG_NAME = "sentinel.log"
DEADLINE_LOOK_S = 30.0  # how late, at most, a hibernating session notices its deadline


def interval(cfg: ProjectConfig, open_jobs: list[Job], *, remote: bool,
             deadline: float | None = None) -> float | None:
    """How often a hibernating session's watch should look (None: no watch is needed): every `[backend] watch_s`
    for jobs on a scheduler, every `[autonomy] early_stop_check_s` while early stopping has running jobs to judge,
    and at least every DEADLINE_LOOK_S (sooner when it is nearer) while jobs go and the session has a deadline."""
    every: list[float] = []
    if deadline is not None and open_jobs:
        every.append(min(DEADLINE_LOOK_S, max(1.0, deadline - time.time())))
    if remote and any(j.remote for j in open_jobs):
        every.append(cfg.backend.watch_s)
    if cfg.autonomy.early_stop and any(j.state == JobState.RUNNING for j in open_jobs):
        every.append(cfg.autonomy.early_stop_check_s)
    return min(every) if every else None


def start(root: Path, interval_s: float) -> None:
    """Leave the watch running for this project (nothing happens when one already runs: it holds the lock)."""
    paths = StatePaths.of(root)
    if _held(paths.dir / LOCK_NAME):
        return
    log = os.open(paths.dir / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        subprocess.Popen([sys.executable, "-m", "nightlab.agent.sentinel", str(root), str(interval_s)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
                         cwd=str(root))
    finally:
        os.close(log)


def _held(path: Path) -> bool:
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def watch(root: Path, interval_s: float, *, max_s: float = 7 * 24 * 3600) -> int:
    """The watch's life: hold the lock, look every `interval_s` seconds, wake the engine when a job ended unseen or a
    running one should be stopped early."""
    paths = StatePaths.of(root)
    fd = os.open(paths.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another watch runs for this project
    look = _Look(root, paths, load_config(root))
    until = time.monotonic() + max_s
    while time.monotonic() < until:
        if _asleep_for(paths, interval_s) and look.once():
            continue
        # the session is awake, done or has nothing left to watch: go. But an engine that hibernated again in the
        # meantime found this lock held and started no watch of its own; so let the lock go, then look once more
        fcntl.flock(fd, fcntl.LOCK_UN)
        if not _hibernating(paths):
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # the watch that engine started holds it now
    return 0


class _Look:
    """One look at a hibernating session's open jobs, and the wake it calls for."""

    def __init__(self, root: Path, paths: StatePaths, cfg: ProjectConfig) -> None:
        self.root, self.paths, self.cfg = root, paths, cfg
        settings = cfg.backend.settings()
        self.backend = make_backend(settings) if settings.kind != BackendKind.LOCAL else None  # local: no scheduler
        self.next_query = 0.0
        self.woken_for: set[int] = set()  # jobs the engine was woken to stop early: once each
        self.deadlines: dict[int, float | None] = {}  # each session's deadline, read once
        self.woken_at_deadline: set[int] = set()  # sessions whose engine was woken at their deadline: once each

    def once(self) -> bool:
        """Look, and wake the engine if it has something to do; False when there is nothing left to watch."""
        store = Store(self.paths.db)
        try:
            session = store.latest_session()
            open_jobs = store.open_jobs()
            if session is None or session.state != SessionState.HIBERNATING or not open_jobs:
                return False
            losing = [j for j in _losing(self.paths, self.cfg, store, open_jobs) if j.id not in self.woken_for]
            if session.id not in self.deadlines:
                self.deadlines[session.id] = sessions.recorded_deadline(store, session.id)
        finally:
            store.close()
        why: list[str] = []
        due = self.deadlines[session.id]
        if due is not None and time.time() >= due and session.id not in self.woken_at_deadline:
            self.woken_at_deadline.add(session.id)
            why.append("the session's deadline has come")
        if losing:
            self.woken_for.update(j.id for j in losing)
            why.append(f"{', '.join(f'#{j.experiment_id}' for j in losing)} to be stopped early")
        jobs = {str(j.sched_id): j for j in open_jobs if j.sched_id}
        if jobs and self.backend is not None and time.monotonic() >= self.next_query:
            self.next_query = time.monotonic() + self.cfg.backend.watch_s
            try:
                infos = self.backend.query(sorted(jobs))
            except BackendError as e:  # unreachable for now: ask again next time
                print(f"{time.strftime('%H:%M:%S')} the scheduler did not answer: {e}", flush=True)
                infos = {}
            gone = [i for i, info in infos.items() if info.state in (SchedState.ENDED, SchedState.UNKNOWN)]
            if gone:
                why.append(f"{', '.join(gone)} ended with no wrapper to say so")
        if why:
            print(f"{time.strftime('%H:%M:%S')} [{os.getpid()}] {'; '.join(why)}: waking the engine", flush=True)
            subprocess.run([sys.executable, "-m", "nightlab", "wake", "--quiet", str(self.root)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=str(self.root), check=False)
        return True


def _hibernating(paths: StatePaths) -> bool:
    """Whether the project's latest session hibernates (False when the project or its state is gone)."""
    if not paths.db.is_file():
        return False
    store = Store(paths.db)
    try:
        session = store.latest_session()
    finally:
        store.close()
    return session is not None and session.state == SessionState.HIBERNATING


def _asleep_for(paths: StatePaths, seconds: float) -> bool:
    """Wait `seconds`, looking each second whether the session still hibernates (so the watch goes within a second
    of the session ending, not a whole interval later); False as soon as it does not."""
    end = time.monotonic() + seconds
    while True:
        time.sleep(max(0.0, min(1.0, end - time.monotonic())))
        if not _hibernating(paths):
            return False
        if time.monotonic() >= end:
            return True


def _losing(paths: StatePaths, cfg: ProjectConfig, store: Store, open_jobs: list[Job]) -> list[Job]:
    """The running jobs the engine's early-stopping rule would stop now (read only: nothing is written or stopped)."""
    if not cfg.autonomy.early_stop:
        return []
    stopper = early_stop.EarlyStopper(store, cfg)
    out = []
    for job in open_jobs:
        if job.state != JobState.RUNNING:
            continue
        try:
            verdict = stopper.check(job, paths.worktree(job.experiment_id))
        except (OSError, NightlabError):
            continue  # an unreadable curve stops nothing; the engine says so when it looks itself
        if verdict is not None and verdict.stop:
            out.append(job)
    return out


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1]), float(sys.argv[2])))
