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
from collections.abc import Callable
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


# a scheduler's job is recorded under the name it is submitted with, in one transaction with its attempt and budget:
# killed between the job's row and its backend, the row read as a local job's, called lost for want of a process
DIE_RECORDING_A_REMOTE_JOB = """
import os, signal, sys
from nightlab.agent import store
update_job = store.Store.update_job
def dying(self, jid, **changes):
    if "backend" in changes:
        os.kill(os.getpid(), signal.SIGKILL)
    return update_job(self, jid, **changes)
store.Store.update_job = dying
from nightlab.cli import main
sys.exit(main())
"""


def test_a_scheduler_job_killed_while_it_is_recorded_leaves_nothing_half_written(tiny_project: Path) -> None:
    import clusters

    from nightlab.agent.config import BackendConfig

    from helpers import git, write_config

    if clusters.ray_missing().startswith("the ray package"):
        pytest.skip(clusters.ray_missing())
    (port,) = clusters.free_ports(1)  # nothing listens there: the job never reaches a scheduler either way
    write_config(tiny_project, backend=BackendConfig(kind="ray", address=f"http://127.0.0.1:{port}"))
    git(tiny_project, "commit", "-qam", "on a cluster")
    p = nl(tiny_project, "run", "--mode", "autonomous", "--budget", "1", "--unsafe-no-sandbox",
           script=DIE_RECORDING_A_REMOTE_JOB)
    assert p.returncode == -9, (p.returncode, p.stderr)
    store = open_store(tiny_project)
    first = store.experiments()[0]
    assert first.attempts == 0 and first.status == "queued", first
    assert not store.jobs(), "half a job was recorded"
    assert store.latest_session().runs_started == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("k", [4, 17, 33])
def test_a_session_killed_after_any_write_ends_as_an_uninterrupted_one(k: int, tmp_path: Path) -> None:
    """bench/crash_points.py kills the engine after every write of a session in turn; three of them here (4 was the
    baseline's row before its branch: the woken engine refused the baseline for want of a parent, and the session
    ended with no run at all). Whatever write k is as the code changes, it is a point a crash can hit."""
    ref, writes = crash_points.reference(tmp_path, 3, 0.05)
    assert len(writes) > k and len(ref.experiments) == 3
    t = crash_points.trial(tmp_path, 3, k, ref, 0.05)
    assert t.killed and not t.problems, t.problems


@pytest.mark.parametrize("k", [16, 21])
def test_a_session_that_starts_with_a_fix_killed_after_a_write_ends_as_an_uninterrupted_one(
        k: int, tmp_path: Path) -> None:
    """The committed code fails (the loss goes NaN), so the session first diagnoses it and runs the catalogue's
    repair. 16 is the repair's row written before its branch and commit, 21 the failed baseline settled after the
    repair's decision step was recorded, before the repair's launch (bench/crash_points.py --broken names every
    write of that session)."""
    ref, writes = crash_points.reference(tmp_path, 4, 0.05, broken=True)
    assert ref.experiments[0][2] == "failed" and "lower LR" in ref.experiments[1][0], ref.experiments
    assert writes[k - 1].startswith(("insert experiments", "update experiments")), writes[k - 1]
    t = crash_points.trial(tmp_path, 4, k, ref, 0.05, broken=True)
    assert t.killed and not t.problems, t.problems


def test_a_baseline_that_cannot_be_committed_on_waking_is_refused_once_and_the_session_goes_on(
        tmp_path: Path) -> None:
    """Killed between the baseline's row and its branch, and the branch cannot be made when the session wakes (a
    stale ref lock, as a kill inside git leaves): the baseline is recorded as not committed and said, not raised by
    every wake that follows; the session measures a new baseline and ends as usual."""
    root = crash_points.project(tmp_path / "p", 0.05)
    lock = root / ".git" / "refs" / "heads" / "nightlab" / "1" / "1.lock"  # the baseline's branch, locked
    code, killed = crash_points.run_killed(root, 3, 4, detach=False, wake=False)
    assert code == -9 and killed
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    assert nl(root, "wake").returncode == 0
    crash_points.wait_done(root, 120)
    store = open_store(root)
    first, *rest = store.experiments()
    assert first.kind == "baseline" and first.status == "rejected" and "not committed" in (first.error or "")
    assert any("could not be committed" in str(ev["message"]) for ev in store.events())
    assert rest and rest[0].kind == "baseline" and rest[0].run_result == "succeeded", rest
    assert store.latest_session().state == "done"  # type: ignore[union-attr]


def test_a_detached_session_whose_wake_is_killed_mid_verdict_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """`nightlab run --detach` hibernates while its job runs; the job's wrapper starts `nightlab wake` when the job
    ends, and it is that process which is killed here, after it wrote the run's result and before the rest of its
    verdict (bench/crash_points.py --detach numbers the writes of every process of the session)."""
    ref, writes = crash_points.reference(tmp_path, 3, 0.05, detach=True)
    k = next(i for i, w in enumerate(writes, 1) if w.startswith("update experiments (status, settled, run_result"))
    assert any(w.startswith("update sessions (state, wake_conditions") for w in writes[:k - 1]), writes[:k]
    root = crash_points.project(tmp_path / "killed", 0.05)
    code, killed = crash_points.run_killed(root, 3, k, detach=True)
    assert code == 0 and killed, "the kill was meant for a wake started by a job's wrapper, not for `nightlab run`"
    got = crash_points.outcome(root)
    assert not crash_points.compare(got, ref, 3), crash_points.compare(got, ref, 3)


def test_a_step_mode_approval_killed_after_its_answer_ends_as_an_uninterrupted_session(tmp_path: Path) -> None:
    """Step mode, detached: each proposal waits for `nightlab approve`. The approving process is killed right after
    it wrote the answer, before it could wake the hibernating engine; cron's wake finds the answer and the run
    starts as if nothing happened (bench/crash_points.py --step)."""
    ref, writes = crash_points.reference(tmp_path, 3, 0.05, step=True)
    k = writes.index("update approvals (decided)") + 1
    t = crash_points.trial(tmp_path, 3, k, ref, 0.05, step=True)
    assert t.killed and not t.problems, t.problems
    assert len(ref.experiments) == 3


def test_a_step_mode_proposal_killed_before_its_question_is_asked_on_waking(tmp_path: Path) -> None:
    """Killed between a proposal's row and its approval request: the woken engine (a `nightlab wake`, with nobody
    at a console to ask) filed no question, hibernated with nothing to wake it, and every wake after it did the
    same — the session waited forever (bench/crash_points.py --step found it). The question is filed on waking."""
    ref, writes = crash_points.reference(tmp_path, 3, 0.05, step=True)
    asked = writes.index("insert approvals")
    k = max(i for i, w in enumerate(writes[:asked], 1) if w == "insert experiments")  # the proposal's row
    t = crash_points.trial(tmp_path, 3, k, ref, 0.05, step=True)
    assert t.killed and not t.problems, t.problems


def test_a_checkpoint_killed_before_its_question_still_waits_for_a_person(tmp_path: Path) -> None:
    """Autonomous, with a checkpoint on every run predicted over a tiny limit: killed between a proposal's row and
    its approval request, the woken engine queued it as any autonomous proposal and ran it without asking. The
    checkpoint's question is filed on waking, and the run waits for its answer."""
    def checkpointed(name: str) -> Path:
        root = crash_points.project(tmp_path / name, 0.05)
        with (root / "nightlab.toml").open("a") as f:
            f.write("\n[autonomy]\nask_runs_over_min = 0.00001\n")
        return root

    def until(what: Callable[[], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.2)

    probe = checkpointed("probe")  # where an uninterrupted session asks
    crash_points.run_killed(probe, 3, 0, detach=True, wake=False)
    until(lambda: "insert approvals" in crash_points.writes_of(probe))
    k = crash_points.writes_of(probe).index("insert approvals")  # the write before the question
    root = checkpointed("killed")
    code, _ = crash_points.run_killed(root, 3, k, detach=True, wake=False)
    assert code == 0
    lock = ProjectLock(root / ".nightlab")
    until(lambda: len(crash_points.writes_of(root)) >= k and not lock.is_held())
    store = open_store(root)
    [proposal] = [e for e in store.experiments() if e.kind not in ("baseline", "rerun")]
    assert proposal.commit_sha and not store.approvals_of(kind="hypothesis", experiment_id=proposal.id)
    assert nl(root, "wake").returncode == 0
    until(lambda: bool(store.approvals_of(kind="hypothesis", experiment_id=proposal.id)))
    [appr] = store.approvals_of(kind="hypothesis", experiment_id=proposal.id)
    assert appr.payload.get("checkpoint") == "long_run" and appr.state == "pending", appr
    until(lambda: not lock.is_held())
    assert store.experiment(proposal.id).attempts == 0, "it ran without asking"
