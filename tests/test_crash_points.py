"""A kill -9 between two writes to the store, at chosen points rather than random moments.

The torture test (test_torture.py) kills at random moments and once hit the gap between marking an experiment
started and counting the run against the budget: the woken engine took the launch as interrupted, re-ran it as a
free re-try, and the session ran one experiment past its budget. Here the engine kills itself at exactly that
point, and (as bench/crash_points.py does for every write of a session) after a few numbered writes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightlab.agent.engine import open_store
from nightlab.agent.lock import ProjectLock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import crash_points

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


@pytest.mark.parametrize("k", [4, 17, 33])
def test_a_session_killed_after_any_write_ends_as_an_uninterrupted_one(k: int, tmp_path: Path) -> None:
    """bench/crash_points.py kills the engine after every write of a session in turn; three of them here (4 was the
    baseline's row before its branch: the woken engine refused the baseline for want of a parent, and the session
    ended with no run at all). Whatever write k is as the code changes, it is a point a crash can hit."""
    ref, writes = crash_points.reference(tmp_path, 3, 0.05)
    assert writes > k and len(ref.experiments) == 3
    t = crash_points.trial(tmp_path, 3, k, ref, 0.05)
    assert t.killed and not t.problems, t.problems
