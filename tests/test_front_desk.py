"""The front desk (nightlab.agent.actions): every user action, on a real repository and store, directly and from
the command line. The TUI's keys reach the same desk (tests/tui/test_flows.py), the console approver's `e` too
(tests/test_interrupt.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightlab.agent.actions import FrontDesk, hypothesis_text, parse_hypothesis
from nightlab.agent.lock import ProjectLock
from nightlab.agent.states import ApprovalState, Mode, Status
from nightlab.agent.store import Store
from nightlab.errors import NightlabError

sys.path.insert(0, str(Path(__file__).parent / "tui"))

from tuikit import Populated, clone, git, make_project, populate


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Populated]:
    root = make_project(tmp_path_factory.mktemp("template") / "proj")
    return root, populate(root)


@pytest.fixture
def project(template: tuple[Path, Populated], tmp_path: Path) -> Iterator[tuple[Path, Populated]]:
    """A populated project (a baseline, a kept best, a worse run, a crash, a proposal and a promote waiting) whose
    lock is held as an engine would hold it, so answers signal that engine instead of starting one."""
    root = clone(template[0], tmp_path / "proj")
    lock = ProjectLock(root / ".nightlab")
    lock.acquire("test engine")
    yield root, template[1]
    lock.release()


def desk_of(root: Path, who: str = "tester") -> FrontDesk:
    return FrontDesk(root, who=who)


def nl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------------------------------------ approvals
def test_approve_records_who_and_signals_the_engine(project: tuple[Path, Populated]) -> None:
    root, ids = project
    signal = root / ".nightlab" / "signal"
    signal.unlink(missing_ok=True)
    appr = desk_of(root).approve(ids.proposed)
    assert (appr.state, appr.who) == (ApprovalState.APPROVED, "tester")
    assert signal.exists()  # the engine holding the lock looks again
    with pytest.raises(NightlabError, match=r"#\d+ has no pending approval \(it is proposed\)"):
        desk_of(root).approve(ids.proposed)  # decided already: the first decision wins


def test_reject_keeps_the_feedback_the_policy_reads(project: tuple[Path, Populated]) -> None:
    root, ids = project
    desk = desk_of(root)
    appr = desk.reject(ids.proposed, "too close to the best")
    assert appr.state == ApprovalState.REJECTED and appr.feedback == "too close to the best"
    with pytest.raises(NightlabError, match="no pending approval"):
        desk.reject(ids.best, "nothing asks about it")


def test_decide_answers_any_request_in_the_queue(project: tuple[Path, Populated]) -> None:
    root, ids = project
    desk = desk_of(root)
    promote = desk.store.approval(ids.promote_approval)
    assert desk.decide(promote, ApprovalState.REJECTED, "not yet").state == ApprovalState.REJECTED
    with pytest.raises(NightlabError, match="already decided"):
        desk.decide(promote, ApprovalState.APPROVED)
    budget = desk.store.add_approval("budget", {"spent": 5.0}, ids.session, None)
    assert desk.decide_budget(ApprovalState.APPROVED).id == budget.id
    with pytest.raises(NightlabError, match="no budget extension"):
        desk.decide_budget(ApprovalState.APPROVED)


def test_an_answer_to_a_hibernating_session_wakes_it(template: tuple[Path, Populated], tmp_path: Path) -> None:
    """No engine holds the project: the answer starts `nightlab wake`, which takes the lock and acts on it."""
    root = clone(template[0], tmp_path / "proj")
    ids = template[1]
    store = Store(root / ".nightlab" / "nightlab.db")
    store.update_session(ids.session, state="hibernating")
    desk_of(root).reject(ids.proposed, "not this one")
    deadline = 60.0
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline and store.experiment(ids.proposed).status == Status.PROPOSED:
        time.sleep(0.2)
    assert store.experiment(ids.proposed).status == Status.REJECTED  # the woken engine acted on the answer
    assert store.experiment(ids.proposed).diagnosis == "not this one"
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline and ProjectLock(root / ".nightlab").is_held():
        time.sleep(0.2)  # let the woken engine finish before the temp folder goes


# ------------------------------------------------------------------------------------------------ editing
def test_edit_hypothesis_of_a_proposal_only(project: tuple[Path, Populated]) -> None:
    root, ids = project
    desk = desk_of(root)
    e = desk.edit_hypothesis(ids.proposed, "  LR = 0.35  ", "halfway between\n")
    assert (e.title, e.rationale) == ("LR = 0.35", "halfway between")
    assert any(ev["kind"] == "edited" and "tester" in ev["message"] for ev in desk.store.events())
    with pytest.raises(NightlabError, match="only a proposal waiting for approval can be edited"):
        desk.edit_hypothesis(ids.best, "rewrite history", "")
    with pytest.raises(NightlabError, match="needs a title"):
        desk.edit_hypothesis(ids.proposed, " ", "")


def test_hypothesis_text_round_trips() -> None:
    from nightlab.agent.store import Experiment

    e = Experiment(id=7, title="LR = 0.3", rationale="closer to the peak\nsecond line")
    assert parse_hypothesis(hypothesis_text(e)) == ("LR = 0.3", "closer to the peak\nsecond line")
    assert parse_hypothesis("# only comments\n\n") is None


def _edit_lr(paths: list[Path], new: str) -> None:
    for p in paths:
        p.write_text(p.read_text().replace("LR = 0.4", new))


@pytest.mark.parametrize("worktree", ["kept", "gone"])
def test_a_patch_edit_is_folded_into_the_experiments_one_commit(project: tuple[Path, Populated],
                                                                worktree: str) -> None:
    """The one editing semantics: whoever edits, the experiment stays one commit on top of its parent's, on its own
    branch; a missing worktree is made again (detached) and the branch follows the amended commit."""
    root, ids = project
    desk = desk_of(root)
    before = desk.experiment(ids.proposed)
    parent = desk.experiment(ids.best)
    if worktree == "gone":
        desk.ws.prune(ids.proposed)
    assert desk.edit_patch(ids.proposed, lambda paths: None) is None  # the editor changed nothing
    e = desk.edit_patch(ids.proposed, lambda paths: _edit_lr(paths, "LR = 0.45"))
    assert e is not None and e.commit_sha != before.commit_sha
    assert git(root, "rev-parse", f"{e.commit_sha}^").strip() == parent.commit_sha  # one commit on its parent
    assert git(root, "rev-parse", before.branch or "").strip() == e.commit_sha  # the branch follows
    assert "+LR = 0.45" in (e.patch or "") and "LR = 0.4\n" not in git(root, "show", f"{e.commit_sha}:train.py")
    assert e.title == before.title and e.rationale == before.rationale  # the hypothesis is the user's to edit
    with pytest.raises(NightlabError, match="only a proposal"):
        desk.patch_files(ids.best)


# ------------------------------------------------------------------------------------------------ review, promote
def test_diff_against_the_parent_and_the_users_branch(project: tuple[Path, Populated]) -> None:
    root, ids = project
    desk = desk_of(root)
    assert "-LR = 0.3\n+LR = 0.4" in desk.diff(ids.proposed)
    assert "-LR = 0.1\n+LR = 0.4" in desk.diff(ids.proposed, against_base=True)
    assert desk.diff(ids.proposed, stat=True) == "1 file(s), +1 -1"
    with pytest.raises(NightlabError, match="no experiment #99"):
        desk.diff(99)


def test_promote_commits_onto_the_users_branch_and_answers_the_request(project: tuple[Path, Populated]) -> None:
    root, ids = project
    desk = desk_of(root)
    with pytest.raises(NightlabError, match="did not succeed"):
        desk.preview_promote(ids.failed)
    before = git(root, "rev-parse", "HEAD").strip()
    done = desk.promote(ids.best)
    assert (done.branch, done.title) == ("main", "LR = 0.3")
    assert git(root, "rev-parse", "HEAD~1").strip() == before and "LR = 0.3" in (root / "train.py").read_text()
    assert desk.experiment(ids.best).status == Status.PROMOTED
    appr = desk.store.approval(ids.promote_approval)
    assert (appr.state, appr.who) == (ApprovalState.APPROVED, "tester")
    with pytest.raises(NightlabError, match="already promoted"):
        desk.promote(ids.best)


# ------------------------------------------------------------------------------------------------ jobs, session
def test_stop_finds_the_rows_running_job(project: tuple[Path, Populated], monkeypatch: pytest.MonkeyPatch) -> None:
    from nightlab.sandbox import runner

    root, ids = project
    desk = desk_of(root)
    with pytest.raises(NightlabError, match="has no running job"):
        desk.stop_job(ids.best)
    rerun = desk.store.add_experiment(session_id=ids.session, parent_id=ids.best, kind="rerun", rerun_of=ids.best,
                                      status="running", title="re-run #best with seed 1")
    run_dir = root / ".nightlab" / "runs" / str(rerun.id)
    job = desk.store.add_job(rerun.id, str(run_dir), str(run_dir / "output.log"), "cpu0")
    desk.store.update_job(job.id, state="running")
    stopped: list[tuple[str, str]] = []
    monkeypatch.setattr(runner, "stop", lambda d, why="", wrapper=None: stopped.append((str(d), why)) or True)
    assert desk.stop_job(ids.best).id == job.id  # the best's row: its confirmation's job
    assert stopped == [(str(run_dir), "stopped by the user (tester)")]


@pytest.mark.parametrize(("who", "name"), [("tui", "TUI"), ("cli:4242", "CLI"), ("console", "console"),
                                           ("tester", "tester")])
def test_a_front_ends_signature_reads_as_its_name(who: str, name: str) -> None:
    from nightlab.agent.views import signer_name

    assert signer_name(who) == name


def test_mode_change_is_saved_and_told_to_a_running_engine(project: tuple[Path, Populated]) -> None:
    from nightlab.agent.engine import EngineOptions

    class Running:
        options = EngineOptions(mode="step")

    root, ids = project
    desk = desk_of(root)
    engine = Running()
    desk.set_mode(Mode.AUTONOMOUS, engine=engine)  # type: ignore[arg-type]
    assert desk.store.session(ids.session).mode == Mode.AUTONOMOUS and engine.options.mode == Mode.AUTONOMOUS
    assert desk.resume_mode() == Mode.AUTONOMOUS  # what the next `nightlab run` continues in


def test_memory_lists_what_was_tried(project: tuple[Path, Populated]) -> None:
    root, _ids = project
    text = desk_of(root).memory("lr")
    assert "LR = 0.3" in text and "improved" in text and "EPOCHS = 0" not in text


# ------------------------------------------------------------------------------------------------ the command line
def test_the_command_line_asks_the_desk(project: tuple[Path, Populated]) -> None:
    root, ids = project
    p = nl(root, "diff", str(ids.proposed), "--stat")
    assert p.returncode == 0 and p.stdout.strip() == "1 file(s), +1 -1", p.stderr
    p = nl(root, "reject", str(ids.proposed), "--why", "try 0.35 instead")
    assert p.returncode == 0 and p.stdout.startswith("rejected #"), p.stderr
    appr = Store(root / ".nightlab" / "nightlab.db").approval(ids.hypothesis_approval)
    assert appr.feedback == "try 0.35 instead" and (appr.who or "").startswith("cli:")
    p = nl(root, "approve", str(ids.proposed))
    assert p.returncode != 0 and p.stderr.strip().startswith("nightlab: experiment #") and "Traceback" not in p.stderr
    p = nl(root, "stop", str(ids.best), "--yes")
    assert p.returncode != 0 and "has no running job" in p.stderr
    p = nl(root, "promote", str(ids.best), "--yes")
    assert p.returncode == 0 and "committed" in p.stdout and "on main" in p.stdout, p.stderr
    assert "LR = 0.3" in (root / "train.py").read_text()
