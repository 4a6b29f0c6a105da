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
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from nightlab.agent.config import load_config
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import SessionState
from nightlab.agent.store import Store
from nightlab.sandbox.backends import BackendError, SchedState, make_backend

LOCK_NAME = "sentinel.lock"
LOG_NAME = "sentinel.log"


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
    """The watch's life: hold the lock, look every `interval_s` seconds, wake the engine when a job ended unseen."""
    paths = StatePaths.of(root)
    fd = os.open(paths.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another watch runs for this project
    backend = make_backend(load_config(root).backend.settings())
    wake = [sys.executable, "-m", "nightlab", "wake", "--quiet", str(root)]
    until = time.monotonic() + max_s
    while time.monotonic() < until:
        time.sleep(interval_s)
        if not paths.db.is_file():
            return 0  # the project (or its state) is gone: nothing to watch
        store = Store(paths.db)
        try:
            session = store.latest_session()
            jobs = {str(j.sched_id): j for j in store.open_jobs() if j.sched_id}
        finally:
            store.close()
        if session is None or session.state != SessionState.HIBERNATING or not jobs:
            return 0  # awake, done, or nothing left on the scheduler: the engine looks after itself
        try:
            infos = backend.query(sorted(jobs))
        except BackendError as e:  # unreachable for now: ask again next time
            print(f"{time.strftime('%H:%M:%S')} the scheduler did not answer: {e}", flush=True)
            continue
        gone = [i for i, info in infos.items() if info.state in (SchedState.ENDED, SchedState.UNKNOWN)]
        if gone:
            print(f"{time.strftime('%H:%M:%S')} {', '.join(gone)} ended with no wrapper to say so: waking the "
                  "engine", flush=True)
            subprocess.run(wake, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=str(root), check=False)
    return 0


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1]), float(sys.argv[2])))
