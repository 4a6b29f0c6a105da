"""Strategic checkpoints in autonomous mode: a structural change or a long run waits in the approval queue with its
reason while the engine goes on with the rest; approved, it runs; settings and the engine's own runs never wait."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from nightlab.agent import checkpoints
from nightlab.agent.config import AutonomyConfig, load_config
from nightlab.agent.engine import Engine, EngineOptions, open_store
from nightlab.agent.policy.base import Edit, PolicyBase, PolicyContext, Proposal
from nightlab.agent.states import ApprovalKind, ApprovalState, Kind, Status

from helpers import git, make_repo, until, write_config


def test_what_stops_at_a_checkpoint() -> None:
    both = AutonomyConfig(ask_structural=True, ask_runs_over_min=10)
    setting = [{"search": "lr = 0.1", "replace": "lr = 3e-4"}]
    code = [{"search": "x = layer(x)", "replace": "x = layer(x)\nx = norm(x)"}]
    assert checkpoints.numbers_only(setting) and not checkpoints.numbers_only(code)
    assert checkpoints.reason(both, Kind.HYPERPARAMETER, setting, 60.0) is None
    assert checkpoints.reason(both, Kind.TRANSFORM, setting, None)[0] == checkpoints.Checkpoint.STRUCTURAL  # type: ignore[index]
    assert checkpoints.reason(both, Kind.LLM, code, None)[0] == checkpoints.Checkpoint.STRUCTURAL  # type: ignore[index]
    assert checkpoints.reason(both, Kind.LLM, setting, None) is None  # a model that only moved a number
    long = checkpoints.reason(both, Kind.HYPERPARAMETER, setting, 11 * 60.0)
    assert long is not None and long[0] == checkpoints.Checkpoint.LONG_RUN and "11.0 min" in long[1]
    for kind in (Kind.BASELINE, Kind.RERUN, Kind.FIX):  # the engine's own runs and repairs go ahead
        assert checkpoints.reason(both, kind, code, 3600.0) is None
    assert checkpoints.reason(AutonomyConfig(), Kind.TRANSFORM, code, 3600.0) is None  # off by default


class StructureFirst(PolicyBase):
    """A structural change first (one more line of code), then two learning rates."""

    name = "structure-first"

    def __init__(self) -> None:
        self.plan = ["structure", "0.1", "0.3"]

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if not self.plan:
            return None
        step = self.plan.pop(0)
        base = ctx.baseline_id
        text = ctx.read_file(base, "train.py")
        if step == "structure":
            line = "LOG_EVERY = 1"
            return Proposal(title="log every step, twice", rationale="a code change", kind=Kind.TRANSFORM,
                            edits=[Edit("train.py", line, f"{line}\nLOG_TWICE = True")], parent_id=base)
        line = next(x for x in text.splitlines() if x.startswith("LR = "))
        return Proposal(title=f"LR = {step}", rationale="a setting", edits=[Edit("train.py", line, f"LR = {step}")],
                        knobs={"LR": float(step)}, parent_id=base)


def _project(tmp_path: Path) -> Path:
    from helpers import TINY_TRAIN

    root = make_repo(tmp_path / "p", {"train.py": TINY_TRAIN})
    write_config(root, autonomy=AutonomyConfig(ask_structural=True))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def test_a_structural_change_waits_for_a_person_while_the_settings_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    opts = EngineOptions(mode="autonomous", budget=8, poll_s=0.1, unsafe_no_sandbox=True)
    engine = Engine(root, load_config(root), options=opts, policy=StructureFirst())
    t = threading.Thread(target=engine.run, daemon=True)
    t.start()
    store = open_store(root)

    def waiting_on_person() -> bool:
        session = store.latest_session()
        return session is not None and session.state == "waiting"

    until(waiting_on_person, "the session waiting on the person")
    exps = {e.title: e for e in store.experiments()}
    waiting = exps["log every step, twice"]
    assert waiting.status == Status.PROPOSED and waiting.run_result is None  # never ran without a yes
    (appr,) = store.approvals(ApprovalState.PENDING)
    assert appr.kind == ApprovalKind.HYPOTHESIS and appr.experiment_id == waiting.id
    assert appr.payload["checkpoint"] == "structural" and "structure" in appr.payload["reason"]
    # the rest went on meanwhile, in its one slot: both settings were proposed after the structural change, and ran
    assert all(exps[t].id > waiting.id and exps[t].run_result is not None for t in ("LR = 0.1", "LR = 0.3"))
    assert any(ev["kind"] == "checkpoint" and "[autonomy] ask_structural" in ev["message"] for ev in store.events())
    assert t.is_alive()
    # a person says yes (the TUI or `nightlab approve` from another shell): the engine runs it and ends
    store.decide(appr.id, ApprovalState.APPROVED, "alice")
    t.join(120)
    assert not t.is_alive()
    ran = store.experiment(waiting.id)
    assert ran.run_result is not None and ran.status not in (Status.PROPOSED, Status.QUEUED)
    assert store.latest_session().state == "done"  # type: ignore[union-attr]


def test_a_long_run_waits_and_a_rejection_is_never_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    cfg = load_config(root)
    cfg.autonomy = AutonomyConfig(ask_runs_over_min=0.0001)  # every measured run is "long" here
    opts = EngineOptions(mode="autonomous", budget=6, poll_s=0.1, unsafe_no_sandbox=True)
    t = threading.Thread(target=Engine(root, cfg, options=opts, policy=StructureFirst()).run, daemon=True)
    t.start()
    store = open_store(root)
    until(lambda: len(store.approvals(ApprovalState.PENDING)) == 3, "all three proposals waiting")
    pending = store.approvals(ApprovalState.PENDING)
    assert all(a.payload["checkpoint"] == "long_run" and "predicted to run" in a.payload["reason"] for a in pending)
    shown = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=root, capture_output=True, text=True,
                           timeout=60).stdout
    assert "waiting for you: hypothesis" in shown and "predicted to run" in shown, shown
    base = next(e for e in store.experiments() if e.kind == Kind.BASELINE)
    assert base.run_result is not None  # the baseline itself never waits
    for a in pending:
        store.decide(a.id, ApprovalState.REJECTED, "alice", "too long for tonight")
    t.join(120)
    assert not t.is_alive()
    for a in pending:
        e = store.experiment(a.experiment_id)  # type: ignore[arg-type]
        assert e.status == Status.REJECTED and e.run_result is None and "too long" in (e.error or "")


def test_going_over_the_compute_budget_asks_and_goes_on_when_approved(tmp_path: Path) -> None:
    """[autonomy] ask_over_budget: where the session would end at its compute budget, it asks (a `compute` approval
    with the reason) and waits; a yes grants a budget more from what was spent and runs start again; a no ends it."""
    from helpers import TINY_TRAIN, ScriptedPolicy

    slow = TINY_TRAIN.replace("import random\n", "import random\nimport time\ntime.sleep(1.0)\n")
    root = make_repo(tmp_path / "p", {"train.py": slow})
    # 6 CPU-seconds: a few runs of a second (more on a loaded machine), and room for one more after a yes
    write_config(root, autonomy=AutonomyConfig(max_cpu_hours=6 / 3600, ask_over_budget=True))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    opts = EngineOptions(mode="autonomous", budget=20, poll_s=0.1, unsafe_no_sandbox=True)
    engine = Engine(root, load_config(root), options=opts,
                    policy=ScriptedPolicy([f"{v / 100:g}" for v in range(5, 95, 5)]))
    t = threading.Thread(target=engine.run, daemon=True)
    t.start()
    store = open_store(root)

    def compute_asks() -> list[int]:
        return [a.id for a in store.approvals(ApprovalState.PENDING) if a.kind == ApprovalKind.COMPUTE]

    until(lambda: bool(compute_asks()), "a request to go over the compute budget")
    until(lambda: store.latest_session().state == "waiting", "the session waiting on the person")  # type: ignore[union-attr]
    (first,) = compute_asks()
    assert "max_cpu_hours" in store.approval(first).payload["reason"]
    assert "ask_over_budget" in store.approval(first).payload["reason"]
    shown = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=root, capture_output=True, text=True,
                           timeout=60).stdout
    assert "nightlab approve compute" in shown, shown
    assert t.is_alive()  # it did not end at the budget
    ran = len(store.jobs())
    subprocess.run([sys.executable, "-m", "nightlab", "approve", "compute"], cwd=root, check=True, timeout=60)
    until(lambda: len(store.jobs()) > ran, "a run started after the yes")
    until(lambda: bool([x for x in compute_asks() if x != first]), "a second request at the extended budget")
    (second,) = compute_asks()
    assert "(extended to " in store.approval(second).payload["reason"]
    subprocess.run([sys.executable, "-m", "nightlab", "reject", "compute"], cwd=root, check=True, timeout=60)
    t.join(120)
    assert not t.is_alive() and store.latest_session().state == "done"  # type: ignore[union-attr]
