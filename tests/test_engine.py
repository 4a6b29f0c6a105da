"""The experiment loop end to end on a tiny, fast project: real git, real job wrapper processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nightlab.agent.config import load_config
from nightlab.agent.engine import Decision, Engine, EngineOptions
from nightlab.agent.states import FailureClass, Kind, Mode, SessionState, Status
from nightlab.agent.store import Approval, Experiment

from helpers import TINY_TRAIN, ScriptedPolicy, git, make_repo, snapshot_repo, write_config


def test_autonomous_run_keeps_a_real_improvement(tiny_project: Path) -> None:
    before = snapshot_repo(tiny_project)
    cfg = load_config(tiny_project)
    policy = ScriptedPolicy(["0.01", "0.3", "0.3@base"])  # worse, better, then a repeat (refused)
    eng = Engine(tiny_project, cfg, options=EngineOptions(mode="autonomous", budget=8), policy=policy)
    summary = eng.run()
    rows = {r["id"]: r for r in summary.rows}
    base = eng.ledger.baseline()
    assert base is not None and rows[base.id]["runs"] == 2  # baseline + one noise run
    worse = next(r for r in summary.rows if r["title"] == "LR = 0.01")
    better = next(r for r in summary.rows if r["title"] == "LR = 0.3")
    assert worse["status"] == "discarded"
    assert better["status"] == "kept" and better["runs"] == 2  # confirmed with a second seed
    assert summary.best_id == better["id"] and summary.best is not None and summary.baseline is not None
    assert summary.best > summary.baseline + 0.1
    dup = [e for e in eng.store.experiments("status = 'rejected'")]
    assert dup and "repeats" in (dup[0].error or "")
    assert summary.state == "done"
    assert snapshot_repo(tiny_project) == before  # the user's repo is untouched by a whole session
    assert not list((tiny_project / ".nightlab" / "worktrees").iterdir())  # all worktrees pruned
    assert eng.store.integrity_ok()
    # a promote approval waits for the human
    assert [a.kind for a in eng.store.approvals("pending")] == ["promote"]


def project(path: Path, train: str) -> Path:
    """A committed project whose train.py is `train`, with nightlab's config committed beside it."""
    repo = make_repo(path, {"train.py": train})
    write_config(repo)
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    return repo


def test_a_confirmation_shares_its_experiments_verdict(tmp_path: Path) -> None:
    """A lucky seed is not a result: LR = 0.3 wins with seed 0 and loses with seed 1, so the confirmation
    discards it, and the confirming run is labelled with that verdict rather than as a kept run of its own."""
    lucky = TINY_TRAIN.replace("random.uniform(-0.002, 0.002)",
                               "(0.0 if LR != 0.3 else (0.05 if seed == 0 else -0.5))")
    repo = project(tmp_path / "lucky", lucky)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=4),
                 policy=ScriptedPolicy(["0.3"]))
    eng.run()
    exps = eng.store.experiments()
    target = next(e for e in exps if e.title == "LR = 0.3")
    confirm = next(e for e in exps if e.rerun_of == target.id)
    noise = next(e for e in exps if e.kind == "rerun" and e.rerun_of != target.id)
    assert target.status == "discarded" and "no improvement" in (target.error or "")
    assert confirm.run_result == "succeeded" and confirm.status == "discarded"
    assert noise.status == "kept"  # the baseline's noise run stays part of the baseline


def test_a_best_found_on_the_last_run_is_confirmed_by_the_next_run(tmp_path: Path) -> None:
    """Budget 3 = baseline, its noise run, LR = 0.3: the win is kept but marked unconfirmed; the next `run` re-runs
    it with another seed before proposing anything, and the seed-0 luck is discarded."""
    lucky = TINY_TRAIN.replace("random.uniform(-0.002, 0.002)",
                               "(0.0 if LR != 0.3 else (0.05 if seed == 0 else -0.5))")
    repo = project(tmp_path / "lucky", lucky)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=3),
                 policy=ScriptedPolicy(["0.3"]))
    summary = eng.run()
    target = next(e for e in eng.store.experiments() if e.title == "LR = 0.3")
    assert target.status == "unconfirmed" and target.error is None  # a state of its own, not a note in `error`
    assert summary.best_id == target.id
    assert [r["unconfirmed"] for r in summary.rows if r["id"] == target.id] == [True]  # shown as "kept?"
    eng2 = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=1),
                  policy=ScriptedPolicy(["0.01"]))
    summary2 = eng2.run()
    exps = eng2.store.experiments()
    confirm = next(e for e in exps if e.rerun_of == target.id)
    assert confirm.seed != target.seed and confirm.run_result == "succeeded"
    assert not any(e.title == "LR = 0.01" for e in exps)  # the one run went to the confirmation
    target = eng2.store.experiment(target.id)
    assert target is not None and target.status == "discarded"
    assert summary2.best_id == eng2.ledger.baseline().id  # type: ignore[union-attr]


def test_a_newer_confirmed_best_withdraws_the_earlier_sessions_promote_request(tmp_path: Path) -> None:
    """Session 1 ends with LR = 0.1 waiting for review; session 2 confirms LR = 0.3, better still: the request to
    promote #0.1 is withdrawn as it is kept (said in the events, decided by nightlab), and only 0.3's waits."""
    repo = project(tmp_path / "two", TINY_TRAIN)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=4),
                 policy=ScriptedPolicy(["0.1"]))
    eng.run()
    first = next(e for e in eng.store.experiments() if e.title == "LR = 0.1")
    assert first.status == "kept"
    assert [(a.kind, a.experiment_id) for a in eng.store.approvals("pending")] == [("promote", first.id)]
    eng2 = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=2),
                  policy=ScriptedPolicy(["0.3"]))
    summary = eng2.run()
    newer = next(e for e in eng2.store.experiments() if e.title == "LR = 0.3")
    assert newer.status == "kept" and summary.best_id == newer.id
    assert [(a.kind, a.experiment_id) for a in eng2.store.approvals("pending")] == [("promote", newer.id)]
    old = next(a for a in eng2.store.approvals(None) if a.experiment_id == first.id)
    assert (old.state, old.who, old.feedback) == ("rejected", "nightlab", f"superseded: #{newer.id} is the best now")
    events = [(ev["kind"], ev["message"]) for ev in eng2.store.events(limit=-1)]
    said = ("superseded", f"the request to promote #{first.id} is withdrawn: #{newer.id} is the best now")
    assert said in events
    assert events.index(said) == next(i for i, (k, m) in enumerate(events) if k == "kept" and f"#{newer.id}" in m) + 1


def test_step_mode_asks_and_honours_reject_with_feedback(tiny_project: Path) -> None:
    cfg = load_config(tiny_project)
    asked: list[str] = []

    def approver(engine: Engine, appr: Approval, e: Experiment) -> Decision:
        title = e.title
        asked.append(title)
        return Decision("rejected", "not this one") if title == "LR = 0.01" else Decision("approved")

    eng = Engine(tiny_project, cfg, options=EngineOptions(mode="step", budget=4),
                 policy=ScriptedPolicy(["0.01", "0.3"]), approver=approver)
    summary = eng.run()
    assert asked == ["LR = 0.01", "LR = 0.3"]
    rejected = next(e for e in eng.store.experiments() if e.title == "LR = 0.01")
    assert rejected.status == "rejected" and rejected.diagnosis == "not this one"
    assert rejected.commit_sha is not None  # its branch keeps the proposal queryable
    assert summary.best_id == next(e.id for e in eng.store.experiments() if e.title == "LR = 0.3")


def test_quit_in_step_mode_keeps_the_proposal_for_next_time(tiny_project: Path) -> None:
    cfg = load_config(tiny_project)
    eng = Engine(tiny_project, cfg, options=EngineOptions(mode="step", budget=3),
                 policy=ScriptedPolicy(["0.3"]), approver=lambda *_: Decision("quit"))
    eng.run()
    pending = eng.store.experiments("status = 'proposed'")
    assert [e.title for e in pending] == ["LR = 0.3"]
    # the next run asks again and runs it
    eng2 = Engine(tiny_project, cfg, options=EngineOptions(mode="step", budget=3),
                  policy=ScriptedPolicy([]), approver=lambda *_: Decision("approved"))
    s = eng2.run()
    assert eng2.store.experiment(pending[0].id).status == "kept"
    assert s.best_id == pending[0].id


STATIC_TRAIN = '''\
import argparse
LR = 0.1


class Opt:
    def step(self):
        pass


def evaluate(w):
    return 0.5 + w


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.parse_args()
    opt, w = Opt(), 0.0
    for i in range(20):
        w += LR * 0.01
        opt.step()
    print(f"acc={evaluate(w):.4f}")


if __name__ == "__main__":
    main()
'''


def test_static_instrumentation_marks_stages_in_a_copy(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": STATIC_TRAIN})
    write_config(root, instrument="static")
    cfg = load_config(root)
    eng = Engine(root, cfg, options=EngineOptions(mode="autonomous", budget=1), policy=ScriptedPolicy([]))
    eng.run()
    base = eng.ledger.baseline()
    assert base is not None and base.run_result == "succeeded"
    log = (root / ".nightlab" / "runs" / str(base.id) / "output.log").read_text()
    assert "[nightlab-stage] first_step" in log and "[nightlab-stage] training" in log
    assert base.stage == "clean_exit"
    # the markers live only in the run dir's copy: the commit and the user's tree are clean
    assert "nightlab" not in (eng.ws.read_file(base.commit_sha or "", "train.py") or "")
    assert "nightlab" not in (root / "train.py").read_text()


@pytest.mark.parametrize("damage", ["removed", "corrupted"])
def test_a_queued_experiment_whose_commit_cannot_be_read_fails_with_its_reason(tiny_project: Path,
                                                                                damage: str) -> None:
    """A commit object gone (or damaged) under a queued experiment: that experiment fails as a launch error with
    the commit named, `nightlab status` shows it, and the session goes on (it used to end in git's traceback)."""
    git(tiny_project, "checkout", "-q", "-b", "gone")
    (tiny_project / "train.py").write_text(TINY_TRAIN.replace("LR = 0.05", "LR = 0.3"))
    git(tiny_project, "commit", "-qam", "LR = 0.3")
    sha = git(tiny_project, "rev-parse", "HEAD").strip()
    git(tiny_project, "checkout", "-q", "main")
    git(tiny_project, "branch", "-D", "gone")
    obj = tiny_project / ".git" / "objects" / sha[:2] / sha[2:]
    obj.unlink()
    if damage == "corrupted":
        obj.write_bytes(b"not a zlib stream")
    eng = Engine(tiny_project, load_config(tiny_project), options=EngineOptions(mode=Mode.AUTONOMOUS, budget=3),
                 policy=ScriptedPolicy([]))
    s = eng.store.create_session(str(eng.root), Mode.AUTONOMOUS, "scripted", 3, eng.ws.head_commit(), "main")
    ghost = eng.store.add_experiment(
        session_id=s.id, parent_id=None, title="LR = 0.3", rationale="", kind=Kind.HYPERPARAMETER,
        branch="nightlab/1/1", commit_sha=sha, status=Status.QUEUED, seed=0, knobs={}, edits=[], policy="scripted",
        depth=0, command=None)
    eng.reruns.seed_plan(ghost)  # its seeding is read from the command alone: nothing raises
    eng.options.wake = True
    summary = eng.run()
    failed = eng.store.experiment(ghost.id)
    assert (failed.status, failed.failure_class) == (Status.FAILED, FailureClass.LAUNCH_ERROR)
    assert failed.error is not None and sha[:12] in failed.error and "\n" not in failed.error
    assert summary.state == SessionState.DONE and summary.baseline is not None  # the session went on
    shown = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=tiny_project, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    row = next(ln for ln in shown.stdout.splitlines() if ln.strip().startswith(f"{ghost.id} "))
    assert "failed" in row and "launch_error" in row
