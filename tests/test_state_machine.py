"""The engine's state machine, one transition at a time, and `reconcile` after each point a crash can leave behind.

A real git repository and store; the engine has no slot, so it never launches anything itself: each test plays the
job wrapper's part by writing a finished run's folder (log, status.json) exactly as the wrapper would, then lets the
engine `tick`. The end-to-end runs with real jobs are in test_engine.py, test_hibernate.py and test_torture.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nightlab.agent.config import load_config
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.policy.base import PolicyBase
from nightlab.agent.proposal import Edit, ExperimentView, PolicyContext, Proposal
from nightlab.agent.states import ApprovalKind, ApprovalState, FailureClass, JobState, Kind, Mode, RunResult, Status
from nightlab.agent.store import Experiment
from nightlab.sandbox import lease
from nightlab.sandbox.spec import JobStatus

from helpers import git


class Scripted(PolicyBase):
    """Proposes the given LR values in order (nothing more after them); fixes a failure by setting EPOCHS = 4."""

    name = "scripted"

    def __init__(self, values: list[str] | None = None) -> None:
        self.values = list(values or [])
        self.proposed = 0

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if not self.values:
            return None
        self.proposed += 1
        v = self.values.pop(0)
        return Proposal(title=f"LR = {v}", rationale="try it", edits=[Edit("train.py", "LR = 0.05", f"LR = {v}")])

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        return Proposal(title="EPOCHS = 4", rationale="more epochs", kind=Kind.FIX,
                        edits=[Edit("train.py", "EPOCHS = 3", "EPOCHS = 4")])


def engine(root: Path, mode: Mode = Mode.AUTONOMOUS, budget: int = 8, policy: PolicyBase | None = None) -> Engine:
    eng = Engine(root, load_config(root), options=EngineOptions(mode=mode, budget=budget), policy=policy or Scripted())
    eng.pool = lease.MachinePool([], str(eng.root))  # no slot: the engine launches nothing, the tests play the jobs
    eng.session = eng.store.create_session(str(eng.root), mode, "scripted", budget, eng.ws.head_commit(), "main")
    return eng


def play(eng: Engine, exp_id: int, metric: float | None, state: str = "succeeded", reason: str = "",
         protected_changed: tuple[str, ...] = ()) -> None:
    """What launching and running a job leaves behind: the row running, a job, and a finished run folder."""
    e = eng.store.experiment(exp_id)
    attempt = e.attempts + 1
    run_dir = eng.paths.run_dir(exp_id, attempt)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = "step 1 loss 0.9\nstep 2 loss 0.5\n" + (f"acc={metric}\n" if metric is not None else
                                                   "Traceback (most recent call last):\nValueError: boom\n")
    (run_dir / "output.log").write_text(log)
    now = time.time()
    JobStatus(job_id=str(exp_id), state=state, exit_code=0 if state == "succeeded" else 1, signal=None,
              started_at=now - 1, ended_at=now, seconds=1.0, pid=1, pid_start_time=None, isolation=["layer0"],
              reason=reason, protected_changed=list(protected_changed)).write(run_dir / "status.json")
    eng.store.update_experiment(exp_id, status=Status.RUNNING, attempts=attempt)
    job = eng.store.add_job(exp_id, str(run_dir), str(run_dir / "output.log"), None)
    eng.store.update_job(job.id, state=JobState.RUNNING)


def by_kind(eng: Engine, kind: Kind) -> list[Experiment]:
    return [e for e in eng.store.experiments() if e.kind == kind]


def baseline_kept(eng: Engine, runs: tuple[float, ...] = (0.70, 0.71)) -> Experiment:
    """The first ticks of a session: the baseline is made, runs, is kept, and its noise re-runs run too."""
    assert eng.tick()
    base = eng.ledger.baseline()
    assert base is not None and base.status == Status.QUEUED and base.commit_sha == eng.ws.head_commit()
    play(eng, base.id, runs[0])
    eng.tick()
    for rerun, value in zip(eng.store.reruns_of(base.id), runs[1:], strict=False):
        play(eng, rerun.id, value)
        eng.tick()
    return eng.store.experiment(base.id)


# ------------------------------------------------------------------------------------------------ transitions
def test_a_kept_baseline_queues_its_noise_run_and_records_the_floor(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    assert eng.tick()  # nothing else to do: the baseline is made first
    base = eng.ledger.baseline()
    assert base is not None and (base.kind, base.status) == (Kind.BASELINE, Status.QUEUED)
    play(eng, base.id, 0.70)
    assert eng.tick()
    base = eng.store.experiment(base.id)
    assert (base.status, base.run_result, base.metric, base.settled) == (Status.KEPT, RunResult.SUCCEEDED, 0.70, 1)
    assert base.reward is not None and base.stage
    [noise] = eng.store.reruns_of(base.id)  # noise_seeds = 2: one more seed
    assert (noise.status, noise.seed, noise.commit_sha) == (Status.QUEUED, 1, base.commit_sha)
    play(eng, noise.id, 0.72)
    eng.tick()
    assert eng.store.experiment(noise.id).status == Status.KEPT
    assert eng.store.session(eng.sid).noise_floor == pytest.approx(0.01414, abs=1e-4)


def test_a_proposal_is_admitted_queued_judged_and_confirmed(tiny_project: Path) -> None:
    eng = engine(tiny_project, policy=Scripted(["0.3"]))
    base = baseline_kept(eng)
    assert eng.tick()  # plans: the policy's proposal is admitted and, in autonomous mode, queued
    [e] = by_kind(eng, Kind.HYPERPARAMETER)
    assert (e.status, e.parent_id) == (Status.QUEUED, base.id)
    assert "+LR = 0.3" in (e.patch or "") and e.branch
    assert git(tiny_project, "rev-parse", e.branch).strip() == e.commit_sha
    play(eng, e.id, 0.90)
    eng.tick()
    assert eng.store.experiment(e.id).status == Status.SUCCEEDED  # better than the best: confirmed first
    [confirm] = eng.store.reruns_of(e.id)
    play(eng, confirm.id, 0.88)
    eng.tick()
    assert eng.store.experiment(e.id).status == Status.KEPT
    assert eng.store.experiment(confirm.id).status == Status.KEPT  # shares its experiment's verdict
    assert eng.ledger.best() == (e.id, pytest.approx(0.89))


def test_a_change_within_the_noise_is_discarded(tiny_project: Path) -> None:
    eng = engine(tiny_project, policy=Scripted(["0.3"]))
    baseline_kept(eng, (0.70, 0.74))
    eng.tick()
    [e] = by_kind(eng, Kind.HYPERPARAMETER)
    play(eng, e.id, 0.705)  # at the baseline's own seed (0.70): a gain well inside half the noise floor
    eng.tick()
    e = eng.store.experiment(e.id)
    assert e.status == Status.DISCARDED and "within noise" in (e.error or "")
    assert not eng.store.reruns_of(e.id)  # nothing to confirm


def test_a_failed_run_is_classified_and_goes_back_for_a_fix(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    play(eng, base.id, None, state="failed")
    eng.tick()
    base = eng.store.experiment(base.id)
    assert (base.status, base.run_result, base.failure_class) == (Status.FAILED, RunResult.FAILED,
                                                                  FailureClass.VALUE_ERROR)
    [fix] = eng.store.proposals_on(base.id)
    assert (fix.kind, fix.depth, fix.status) == (Kind.FIX, 1, Status.QUEUED)


def test_an_interrupted_run_goes_back_to_the_queue(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    play(eng, base.id, None, state="killed", reason="interrupted")
    eng.tick()
    base = eng.store.experiment(base.id)
    assert (base.status, base.run_result, base.error) == (Status.QUEUED, None, "interrupted; re-queued")


def test_a_run_that_changed_a_protected_file_is_invalid(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    play(eng, base.id, 0.9, protected_changed=("eval.py",))
    eng.tick()
    base = eng.store.experiment(base.id)
    assert (base.status, base.metric, base.failure_class) == (Status.FAILED, None, FailureClass.PROTECTED_MODIFIED)


def test_step_mode_waits_for_a_human_and_acts_on_the_answer(tiny_project: Path) -> None:
    eng = engine(tiny_project, mode=Mode.STEP, policy=Scripted(["0.3", "0.01", "0.2"]))
    baseline_kept(eng)
    assert eng.tick()
    [first] = by_kind(eng, Kind.HYPERPARAMETER)
    appr = eng.store.pending_approval(kind=ApprovalKind.HYPOTHESIS, experiment_id=first.id)
    assert first.status == Status.PROPOSED and appr is not None
    assert not eng.tick()  # step mode proposes one at a time: nothing moves until it is answered
    assert any(c.startswith(f"approval {appr.id}") for c in eng.wake_conditions())
    eng.store.decide(appr.id, ApprovalState.REJECTED, "me", "too far from the peak")
    assert eng.tick()
    first = eng.store.experiment(first.id)
    assert (first.status, first.diagnosis) == (Status.REJECTED, "too far from the peak")
    assert not eng.ws.worktree_path(first.id).exists()
    eng.tick()
    second = by_kind(eng, Kind.HYPERPARAMETER)[-1]
    eng.store.decide(eng.store.pending_approval(experiment_id=second.id).id,  # type: ignore[union-attr]
                     ApprovalState.APPROVED, "me")
    eng.tick()
    assert eng.store.experiment(second.id).status == Status.QUEUED
    play(eng, second.id, 0.60)
    eng.tick()
    eng.tick()
    third = by_kind(eng, Kind.HYPERPARAMETER)[-1]
    assert third.status == Status.PROPOSED
    eng.store.update_session(eng.sid, mode=Mode.AUTONOMOUS)  # toggled elsewhere (the TUI, another shell)
    eng.tick()
    assert eng.store.experiment(third.id).status == Status.QUEUED
    assert eng.store.approvals_of(kind=ApprovalKind.HYPOTHESIS, experiment_id=third.id)[-1].who == "autonomous mode"


@pytest.mark.parametrize(("slots_free", "asked"), [(2, True), (1, False)])
def test_step_mode_asks_the_next_run_while_an_approved_one_holds_a_slot(tiny_project: Path, slots_free: int,
                                                                        asked: bool) -> None:
    """Step mode asks one question at a time, but not one run at a time: with two slots, the next proposal is asked
    about while the approved run waits for or holds its slot; with one slot it waits for that run."""
    eng = engine(tiny_project, mode=Mode.STEP, policy=Scripted(["0.3", "0.01"]))
    eng.dispatch.parallel = lambda: slots_free  # type: ignore[method-assign]
    baseline_kept(eng)
    eng.tick()
    first = by_kind(eng, Kind.HYPERPARAMETER)[-1]
    eng.store.decide(eng.store.pending_approval(experiment_id=first.id).id,  # type: ignore[union-attr]
                     ApprovalState.APPROVED, "me")
    eng.tick()
    eng.tick()
    assert eng.store.experiment(first.id).status == Status.QUEUED  # approved (no slot in these tests: queued)
    later = [e for e in by_kind(eng, Kind.HYPERPARAMETER) if e.id > first.id]
    assert bool(later) == asked
    if asked:
        assert later[0].status == Status.PROPOSED
        assert eng.store.pending_approval(experiment_id=later[0].id) is not None
        assert not eng.tick()  # one question at a time: nothing more is proposed while it waits


def test_a_best_kept_on_one_seed_is_confirmed_before_anything_new(tiny_project: Path) -> None:
    """Budget spent right after a win: the win is `unconfirmed`; the next session re-runs it first."""
    eng = engine(tiny_project, budget=3, policy=Scripted(["0.3"]))
    baseline_kept(eng)
    eng.tick()
    [e] = by_kind(eng, Kind.HYPERPARAMETER)
    play(eng, e.id, 0.90)
    eng.store.update_session(eng.sid, runs_started=3)  # the three runs are spent
    eng.tick()
    assert eng.store.experiment(e.id).status == Status.UNCONFIRMED and not eng.store.reruns_of(e.id)
    assert eng.ledger.best()[0] == e.id  # the best so far, on one seed
    policy = Scripted(["0.2"])
    nxt = engine(tiny_project, budget=2, policy=policy)
    assert nxt.tick()
    [confirm] = nxt.store.reruns_of(e.id)
    assert confirm.status == Status.QUEUED and policy.proposed == 0  # before the policy is asked anything
    play(nxt, confirm.id, 0.50)  # mean 0.70: no better than the baseline
    nxt.tick()
    assert nxt.store.experiment(e.id).status == Status.DISCARDED  # a lucky seed
    assert nxt.store.experiment(confirm.id).status == Status.DISCARDED


class Listed(PolicyBase):
    """Proposes the given proposals in order, then nothing; counts how often it was asked."""

    name = "listed"

    def __init__(self, proposals: list[Proposal]) -> None:
        self.proposals = list(proposals)
        self.asked = 0

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        self.asked += 1
        return self.proposals.pop(0) if self.proposals else None

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        return None


def test_refused_proposals_are_recorded_and_three_in_a_row_end_planning(tiny_project: Path) -> None:
    policy = Listed([
        Proposal(title="retitle the readme", rationale="x", edits=[Edit("README.md", "# tiny", "# big")]),
        Proposal(title="touch nothing", rationale="x", edits=[]),
        Proposal(title="a search that misses", rationale="x", edits=[Edit("train.py", "LR = 9", "LR = 1")]),
        Proposal(title="LR = 0.3", rationale="never asked for", edits=[Edit("train.py", "LR = 0.05", "LR = 0.3")]),
    ])
    eng = engine(tiny_project, policy=policy)
    base = baseline_kept(eng)
    for _ in range(3):
        assert eng.tick()
    refused = [e for e in eng.store.experiments() if e.id != base.id and e.kind != Kind.RERUN]
    # an invalid edit is recorded (memory knows it, never as a branch); a change of nothing is only said
    assert [(e.title, e.status, (e.error or "").split(":")[0], e.branch) for e in refused] == [
        ("retitle the readme", Status.REJECTED, "invalid edit", None),
        ("a search that misses", Status.REJECTED, "invalid edit", None)]
    assert any("it changes nothing" in ev["message"] for ev in eng.store.events())
    assert not eng.tick() and policy.asked == 3  # the third refusal in a row ended the planning
    assert eng._finished()


def test_a_commit_with_the_files_of_an_earlier_experiment_is_refused(tiny_project: Path) -> None:
    policy = Listed([Proposal(title="LR = 0.3", rationale="x", edits=[Edit("train.py", "LR = 0.05", "LR = 0.3")])])
    eng = engine(tiny_project, policy=policy)
    base = baseline_kept(eng, (0.70, 0.74))
    assert eng.tick()
    [e] = by_kind(eng, Kind.HYPERPARAMETER)
    play(eng, e.id, 0.705)
    eng.tick()
    assert eng.store.experiment(e.id).status == Status.DISCARDED
    # on #e, set LR back: not the same change as anything tried on #e, but the very files of the baseline
    policy.proposals.append(Proposal(title="LR back to 0.05", rationale="x", parent_id=e.id,
                                     edits=[Edit("train.py", "LR = 0.3\n", "LR = 0.05\n")]))
    assert eng.tick()
    back = eng.store.experiments()[-1]
    assert (back.title, back.status, back.error) == ("LR back to 0.05", Status.REJECTED,
                                                     f"repeats #{base.id} ({base.title})")
    assert not eng.ws.worktree_path(back.id).exists()


def test_a_running_job_whose_wrapper_died_is_lost_and_requeued_once(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    run_dir = eng.paths.run_dir(base.id)
    run_dir.mkdir(parents=True)
    eng.store.update_experiment(base.id, status=Status.RUNNING, attempts=1)
    job = eng.store.add_job(base.id, str(run_dir), str(run_dir / "output.log"), None)
    eng.store.update_job(job.id, state=JobState.RUNNING)  # its wrapper is gone, and it wrote no status
    assert eng.tick()
    assert eng.store.job(job.id).state == JobState.LOST
    base = eng.store.experiment(base.id)
    assert (base.status, base.error) == (Status.QUEUED, "lost (the job wrapper died); re-queued")


# ------------------------------------------------------------------------------------------------ crash points
def test_reconcile_makes_a_recorded_proposal_that_never_got_its_commit(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    base = baseline_kept(eng)
    e = eng.store.add_experiment(session_id=eng.sid, parent_id=base.id, title="LR = 0.3", kind=Kind.HYPERPARAMETER,
                                 status=Status.QUEUED, edits=[{"path": "train.py", "search": "LR = 0.05",
                                                               "replace": "LR = 0.3"}])
    eng.reconcile()
    e = eng.store.experiment(e.id)
    assert e.commit_sha and e.branch and "+LR = 0.3" in (e.patch or "")
    assert git(tiny_project, "rev-parse", f"{e.commit_sha}^").strip() == base.commit_sha
    eng.reconcile()  # again: nothing changes
    assert eng.store.experiment(e.id).commit_sha == e.commit_sha


def test_reconcile_never_deletes_a_branch_it_has_no_row_for(tiny_project: Path) -> None:
    """Every experiment's row is written before its branch, so a branch without a row is no half-made experiment of
    this store (an earlier store's, say): reconcile leaves it, and the baseline's branch, where they are."""
    eng = engine(tiny_project)
    baseline_kept(eng)
    stray = f"nightlab/{eng.sid}/99"
    git(tiny_project, "branch", stray)
    eng.reconcile()
    assert stray in eng.ws.nightlab_branches()
    assert len(eng.ws.nightlab_branches()) == 2


def test_reconcile_requeues_a_launch_interrupted_before_its_job_was_recorded(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    eng.store.update_experiment(base.id, status=Status.RUNNING, attempts=1)  # the crash: no job row yet
    eng.reconcile()
    base = eng.store.experiment(base.id)
    assert (base.status, base.error) == (Status.QUEUED, "lost (launch interrupted); re-queued")
    eng.store.update_experiment(base.id, status=Status.RUNNING, attempts=2)  # and once more: given up on
    eng.reconcile()
    base = eng.store.experiment(base.id)
    assert (base.status, base.run_result) == (Status.LOST, RunResult.LOST)


def test_reconcile_marks_a_job_whose_wrapper_never_started_as_lost(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    run_dir = eng.paths.run_dir(base.id)
    run_dir.mkdir(parents=True)
    eng.store.update_experiment(base.id, status=Status.RUNNING, attempts=1)
    job = eng.store.add_job(base.id, str(run_dir), str(run_dir / "output.log"), None)  # no pid.json, no status
    eng.reconcile()
    assert eng.store.job(job.id).state == JobState.LOST
    assert eng.store.experiment(base.id).status == Status.QUEUED


def test_reconcile_completes_a_verdict_interrupted_after_the_analysis(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    # the crash: the run's results are recorded (settled = 0), its verdict is not
    eng.store.update_experiment(base.id, status=Status.SUCCEEDED, run_result=RunResult.SUCCEEDED, metric=0.7,
                                settled=0, stage="clean_exit", attempts=1)
    eng.reconcile()
    base = eng.store.experiment(base.id)
    assert (base.status, base.settled) == (Status.KEPT, 1) and base.reward is not None
    assert len(eng.store.reruns_of(base.id)) == 1  # its noise run, queued once
    eng.reconcile()
    assert len(eng.store.reruns_of(base.id)) == 1  # a verdict is idempotent


def test_reconcile_prunes_the_worktree_of_a_settled_experiment(tiny_project: Path) -> None:
    eng = engine(tiny_project)
    base = baseline_kept(eng)
    wt = eng.ws.checkout(base.id, base.commit_sha or "", [])
    assert wt.exists()
    eng.reconcile()
    assert not wt.exists()


def test_a_finished_job_found_on_restart_is_analysed_once(tiny_project: Path) -> None:
    """The job ended while no engine ran (its status written, the engine killed): the next engine reads it."""
    eng = engine(tiny_project)
    eng.tick()
    base = eng.ledger.baseline()
    assert base is not None
    play(eng, base.id, 0.7)
    again = Engine(tiny_project, load_config(tiny_project), options=EngineOptions(mode=Mode.AUTONOMOUS, budget=8),
                   policy=Scripted())
    again.pool = lease.MachinePool([], str(again.root))
    again.session = eng.store.session(eng.sid)
    again.reconcile()
    assert again.tick()
    assert again.store.experiment(base.id).status == Status.KEPT
    assert [j.state for j in again.store.jobs()] == [JobState.ENDED]
    events = [ev for ev in again.store.events() if ev["kind"] == "finished"]
    assert len(events) == 1 and json.loads(events[0]["data"])["metric"] == 0.7


def test_reconcile_after_the_results_were_recorded_but_before_the_job_was_closed(tiny_project: Path) -> None:
    """The crash between `collect`'s first two writes: the run's results are on its row (settled = 0), its job is
    still open with the wrapper's status. The next engine completes the verdict and closes the job, and reading the
    run a second time queues no second confirmation and records no second step."""
    eng = engine(tiny_project, policy=Scripted(["0.3"]))
    baseline_kept(eng)
    assert eng.tick()
    [e] = by_kind(eng, Kind.HYPERPARAMETER)
    play(eng, e.id, 0.90)
    # the crash: the results written as collect writes them, the job left open
    eng.store.update_experiment(e.id, status=Status.SUCCEEDED, run_result=RunResult.SUCCEEDED, metric=0.90,
                                settled=0, stage="clean_exit")
    again = Engine(tiny_project, load_config(tiny_project), options=EngineOptions(mode=Mode.AUTONOMOUS, budget=8),
                   policy=Scripted())
    again.pool = lease.MachinePool([], str(again.root))
    again.session = eng.store.session(eng.sid)
    again.reconcile()
    again.tick()
    e = again.store.experiment(e.id)
    assert (e.status, e.settled) == (Status.SUCCEEDED, 1)  # better than the best: waiting for its confirmation
    assert len(again.store.reruns_of(e.id)) == 1  # one confirmation, not one per reading
    assert [j.state for j in again.store.jobs(experiment_id=e.id)] == [JobState.ENDED]
    assert len(again.store.steps(experiment_id=e.id)) == 1  # the decision that proposed it, rewarded once
