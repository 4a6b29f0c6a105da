"""A kill -9 at the worst moment of a launch: between the writes that record it.

The torture test (test_torture.py) kills at random moments and once hit the gap between marking an experiment
started and counting the run against the budget: the woken engine took the launch as interrupted, re-ran it as a
free re-try, and the session ran one experiment past its budget. Here the engine kills itself at exactly that
point, so the gap is hit every time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from nightlab.agent.engine import open_store
from nightlab.agent.lock import ProjectLock

DIE_IN_ADD_JOB = """
import os, signal, sys
from nightlab.agent import store
def add_job(self, *args, **kwargs):  # the experiment is already marked started when the job row is written
    os.kill(os.getpid(), signal.SIGKILL)
store.Store.add_job = add_job
from nightlab.cli import main
sys.exit(main())
"""


def nl(root: Path, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    head = ["-c", script] if script else ["-m", "nightlab"]
    return subprocess.run([sys.executable, *head, *args], cwd=root, capture_output=True, text=True, timeout=120)


def test_a_launch_killed_between_its_writes_spends_the_budget_once(tiny_project: Path) -> None:
    p = nl(tiny_project, "run", "--mode", "autonomous", "--budget", "3", script=DIE_IN_ADD_JOB)
    assert p.returncode == -9, (p.returncode, p.stderr)
    store = open_store(tiny_project)
    first = store.experiments()[0]
    assert first.attempts == 0 and not store.jobs(), "half a launch was recorded"
    assert store.latest_session() is not None and store.latest_session().runs_started == 0  # type: ignore[union-attr]
    assert nl(tiny_project, "wake").returncode == 0
    deadline = time.monotonic() + 90
    lock = ProjectLock(tiny_project / ".nightlab")
    while (getattr(store.latest_session(), "state", "") != "done" or lock.is_held()) and time.monotonic() < deadline:
        time.sleep(0.1)
    ran = {j.experiment_id for j in store.jobs()}
    assert len(ran) == 3, f"budget 3, ran {len(ran)} experiments"
    assert store.latest_session().runs_started == 3  # type: ignore[union-attr]
    assert store.experiment(first.id).attempts == 1  # the killed launch was never a first attempt
