"""The session's plan (agent/plan.py): drafted from what the builtin policy can propose in this repository, edited
and approved from the command line (bad edits: one line, non-zero exit), then followed by the engine phase by phase,
a move outside the plan waiting at a checkpoint while the rest goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nightlab.agent import plan as planmod
from nightlab.agent.actions import FrontDesk
from nightlab.agent.config import load_config
from nightlab.agent.engine import Engine, EngineOptions, open_store
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.phases import MOVE_PHASES, Phase, order_for
from nightlab.agent.policy.searchable import NEVER_KINDS
from nightlab.agent.policy.state import Foreseen
from nightlab.agent.states import ApprovalKind, ApprovalState, Kind, Status

from helpers import TINY_TRAIN, git, make_repo, until, write_config

WIDE_TRAIN = TINY_TRAIN.replace("LOG_EVERY = 1\n", "LOG_EVERY = 1\nHIDDEN = 16\n").replace(
    "random.uniform(-0.002, 0.002)", "random.uniform(-0.002, 0.002) + 0.001 * math.log2(HIDDEN)")


def _project(tmp_path: Path, train: str, name: str = "p") -> Path:
    root = make_repo(tmp_path / name, {"train.py": train})
    write_config(root)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def _nightlab(root: Path, *args: str, editor: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VISUAL": "", "EDITOR": editor or "true"}
    return subprocess.run([sys.executable, "-m", "nightlab", "plan", *args], cwd=root, capture_output=True,
                          text=True, timeout=120, env=env)


def _phases(data: dict[str, object]) -> list[tuple[str, int]]:
    return [(p["phase"], p["runs"]) for p in data["phases"]]  # type: ignore[attr-defined,index]


# ----------------------------------------------------------------------------------------------- the table
def test_every_move_of_the_builtin_policy_has_a_phase() -> None:
    for name in tf.TRANSFORMS:
        assert ("transform", name) in MOVE_PHASES, name
    searchable = (set(knobmod.kinds._KNOWN) | {"choice", "other"}) - NEVER_KINDS - knobmod.UNTUNABLE_KINDS
    for kind in searchable:
        assert ("knob", kind) in MOVE_PHASES, kind


def test_the_diagnosis_orders_the_phases_and_a_failed_baseline_is_made_to_run_first() -> None:
    assert order_for(["overfitting"])[:2] == [Phase.MAKE_IT_RUN, Phase.REGULARISATION]
    assert order_for(["underfitting", "noisy"])[1] == Phase.CAPACITY
    moves = [Foreseen("optimizer", f"lr {i}", 10.0) for i in range(6)] + [Foreseen("capacity", "widen", 40.0)]
    p = planmod.draft(moves, diagnosis=["underfitting"], baseline_failed=True, baseline_s=20.0, run_budget=6,
                      fix_attempts=2)
    assert [(x.phase, x.runs) for x in p.phases] == [("make_it_run", 2), ("capacity", 1), ("optimizer", 3)]
    assert p.phases[1].est_s == 40.0 and p.phases[2].est_s == 30.0  # the cost model's figure, else the baseline's


# ----------------------------------------------------------------------------------------------- drafting
def test_the_phases_offered_depend_on_the_repository(tmp_path: Path) -> None:
    narrow = FrontDesk(_project(tmp_path, TINY_TRAIN, "narrow")).draft_plan()
    wide = FrontDesk(_project(tmp_path, WIDE_TRAIN, "wide")).draft_plan()
    assert [p for p, _ in _phases(narrow)] == ["optimizer", "longer_training"]  # no width or depth knob
    assert [p for p, _ in _phases(wide)] == ["optimizer", "capacity", "longer_training"]
    assert all(p["runs"] >= 1 and p["examples"] for p in wide["phases"])  # type: ignore[attr-defined]
    assert wide["approved"] is None


def test_a_learning_rate_schedule_length_alone_is_an_optimizer_move(tmp_path: Path) -> None:
    """nanoGPT's `lr_decay_iters` changed alone reshapes the schedule (optimizer and learning rate); changed with
    `max_iters` it follows the longer training it belongs to."""
    assert knobmod.schedule_length("config/c.py:lr_decay_iters") and knobmod.schedule_length("LR_DECAY_EPOCHS")
    assert not knobmod.schedule_length("max_iters") and not knobmod.schedule_length("learning_rate")
    train = TINY_TRAIN.replace("LOG_EVERY = 1\n", "LOG_EVERY = 1\nMAX_ITERS = 300\nLR_DECAY_ITERS = 300\n").replace(
        "/ EPOCHS +", "/ EPOCHS + 1e-6 * (MAX_ITERS - LR_DECAY_ITERS) +")
    data = FrontDesk(_project(tmp_path, train)).draft_plan()
    moves = {ex: p["phase"] for p in data["phases"] for ex in p["examples"]}  # type: ignore[attr-defined]
    alone = [ex for ex in moves if "LR_DECAY_ITERS" in ex and "MAX_ITERS" not in ex]
    assert alone and all(moves[ex] == "optimizer" for ex in alone), moves
    assert all(p == "longer_training" for ex, p in moves.items() if "MAX_ITERS" in ex), moves


# ----------------------------------------------------------------------------------------------- editing
def test_each_edit_of_the_command_line_and_a_bad_one_gives_one_line(tmp_path: Path) -> None:
    root = _project(tmp_path, WIDE_TRAIN)
    first = _nightlab(root, "--json")
    assert first.returncode == 0, first.stderr
    assert "plan: draft" in _nightlab(root).stdout
    import json

    def shown(r: subprocess.CompletedProcess[str]) -> list[tuple[str, int]]:
        assert r.returncode == 0, r.stderr
        return _phases(json.loads(r.stdout))

    assert shown(_nightlab(root, "--drop", "capacity", "--json"))[-1] == ("capacity", 0)
    assert shown(_nightlab(root, "--budget", "capacity=3", "--json"))[-1] == ("capacity", 3)  # taken back, last
    got = shown(_nightlab(root, "--order", "longer_training,capacity", "--json"))
    assert [p for p, _ in got] == ["longer_training", "capacity", "optimizer"]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('[[phase]]\nname = "capacity"\nruns = 2\n\n[[phase]]\nname = "capacity"\nruns = 1\n')
    for args, editor, says in [
        (["--drop", "capcity"], None, "--drop capcity: 'capcity' is not a phase of this plan"),
        (["--budget", "capacity=-1"], None, "--budget capacity=-1: runs must be a whole number"),
        (["--budget", "capacity"], None, "expected PHASE=RUNS"),
        (["--order", "capacity,capacity"], None, "'capacity' is named twice"),
        (["--edit"], f"cp {bad_toml}", "plan.toml: phase 2: 'capacity' appears twice"),
        (["--edit"], "sh -c 'echo \"[[phase]\" > $0'", "plan.toml: "),
    ]:
        r = _nightlab(root, *args, editor=editor)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and says in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    # the bad edits changed nothing
    assert [p for p, _ in shown(_nightlab(root, "--json"))] == ["longer_training", "capacity", "optimizer"]
    good = tmp_path / "good.toml"
    good.write_text('[[phase]]\nname = "optimizer"\nruns = 2\n')
    got = shown(_nightlab(root, "--edit", "--approve", "--json", editor=f"cp {good}"))
    assert got == [("optimizer", 2), ("longer_training", 0), ("capacity", 0)]  # deleted phases are dropped
    assert "plan: approved" in _nightlab(root).stdout
    # a new draft is shown and edited, but the approved plan stays the one followed until the draft is approved
    assert "plan: draft" in _nightlab(root, "--redraft").stdout
    status = subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root, capture_output=True,
                            text=True, timeout=60)
    followed = json.loads(status.stdout)["plan"]
    assert followed["approved"] and _phases(followed)[0] == ("optimizer", 2)


# ----------------------------------------------------------------------------------------------- following
@pytest.mark.timeout(300)
def test_an_approved_plan_is_followed_and_a_move_outside_it_waits(tmp_path: Path) -> None:
    root = _project(tmp_path, WIDE_TRAIN)
    desk = FrontDesk(root)
    desk.draft_plan()
    desk.edit_plan(order="longer_training,optimizer", budgets=["longer_training=1", "optimizer=2"],
                   drop=["capacity"], approve=True)
    opts = EngineOptions(mode="autonomous", budget=10, poll_s=0.1, unsafe_no_sandbox=True)
    engine = Engine(root, load_config(root), options=opts)
    t = threading.Thread(target=engine.run, daemon=True)
    t.start()
    store = open_store(root)
    until(lambda: len(store.approvals(ApprovalState.PENDING)) >= 2, "two moves outside the plan waiting", 240)
    engine.stop()
    t.join(120)
    hyps = [e for e in store.experiments() if e.kind not in (Kind.BASELINE, Kind.RERUN) and e.status != "rejected"]
    phases = [e.phase for e in hyps]
    # in the plan's order, within its budgets: one run of longer training, two of the optimizer
    assert phases[:3] == ["longer_training", "optimizer", "optimizer"], [(e.title, e.phase) for e in hyps]
    waiting = [e for e in hyps[3:] if e.status == Status.PROPOSED]
    assert len(waiting) >= 2  # the engine went on proposing while the first waited
    pending = {a.experiment_id: a for a in store.approvals(ApprovalState.PENDING)}
    for e in waiting:
        a = pending[e.id]
        assert a.payload["checkpoint"] == "phase_change" and "[autonomy] ask_phase_change" in a.payload["reason"]
        assert e.run_result is None
    data = desk.status()
    assert [p["state"] for p in data["plan"]["phases"]] == ["done", "done", "dropped"]
    shown = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=root, capture_output=True, text=True,
                           timeout=60).stdout
    assert "plan: every phase done" in shown and "1/1 runs" in shown and "2/2 runs" in shown, shown


def test_without_an_approved_plan_nothing_changes(tmp_path: Path) -> None:
    root = _project(tmp_path, WIDE_TRAIN)
    FrontDesk(root).draft_plan()  # a draft is not followed
    opts = EngineOptions(mode="autonomous", budget=3, poll_s=0.1, unsafe_no_sandbox=True)
    Engine(root, load_config(root), options=opts).run()
    store = open_store(root)
    assert all(e.phase is None for e in store.experiments())
    assert not [a for a in store.approvals(ApprovalState.PENDING) if a.payload.get("checkpoint")]


def test_the_plan_says_whether_it_fits_the_compute_budget(capsys: pytest.CaptureFixture[str]) -> None:
    from nightlab import console

    p = planmod.draft([Foreseen("optimizer", "lr", 30.0), Foreseen("optimizer", "lr 2", 30.0)], diagnosis=[],
                      baseline_failed=False, baseline_s=30.0, run_budget=2, fix_attempts=2)
    rows = planmod.Progress(p).rows()
    console.print_plan({"approved": None, "diagnosis": [], "phases": rows, "budget_s": 50.0})
    out = capsys.readouterr().out
    assert "2 runs, about 1.0 min of compute" in out
    assert "over the compute budget (max_cpu_hours allows about 50 s" in out
    console.print_plan({"approved": None, "diagnosis": [], "phases": rows, "budget_s": 3600.0})
    assert "within the compute budget" in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_in_step_mode_a_move_outside_the_plan_is_asked_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Step mode asks about every proposal; one the approved plan did not foresee carries the checkpoint and its
    reason, as in autonomous mode (the approval's payload, the console's prompt, a `checkpoint` event)."""
    from nightlab.agent.engine import Decision

    root = _project(tmp_path, WIDE_TRAIN)
    desk = FrontDesk(root)
    desk.draft_plan()
    desk.edit_plan(order="longer_training", budgets=["longer_training=1"], drop=["capacity", "optimizer"],
                   approve=True)
    asked: list[dict[str, object]] = []

    def approver(engine: Engine, appr: object, e: object) -> Decision:
        asked.append(dict(appr.payload))  # type: ignore[attr-defined]
        return Decision(ApprovalState.APPROVED)

    opts = EngineOptions(mode="step", budget=7, poll_s=0.1, unsafe_no_sandbox=True)
    engine = Engine(root, load_config(root), options=opts, approver=approver)
    engine.run()
    assert len(asked) >= 2, asked
    first, later = asked[0], asked[1:]
    assert "checkpoint" not in first  # the plan's own phase: a plain proposal
    assert all(a["checkpoint"] == "phase_change" and "[autonomy] ask_phase_change" in str(a["reason"])
               for a in later), later
    events = [ev for ev in engine.store.events() if ev["kind"] == "checkpoint"]
    assert len(events) == len(later) and "ask_phase_change" in events[0]["message"]
    # the console's step prompt says it
    from nightlab import console

    appr = [a for a in engine.store.approvals_of(kind=ApprovalKind.HYPOTHESIS) if a.payload.get("checkpoint")][-1]
    monkeypatch.setattr("builtins.input", lambda _prompt="": "y")
    capsys.readouterr()
    console.ask_proposal(FrontDesk.of_engine(engine), appr, engine.store.experiment(appr.experiment_id or 0), 1)
    assert "checkpoint: " in capsys.readouterr().out


def test_the_plan_counts_a_gpu_budget_by_the_gpus_a_run_gets(tmp_path: Path) -> None:
    """`max_gpu_hours` limits the plan's runs by the GPUs each job gets (two here), as the session counts them; the
    smaller of the CPU and GPU allowances is the one shown."""
    from nightlab.agent.config import AutonomyConfig, SlotsConfig

    root = make_repo(tmp_path / "p", {"train.py": TINY_TRAIN})
    write_config(root, autonomy=AutonomyConfig(max_gpu_hours=0.01, max_cpu_hours=1.0),
                 slots=SlotsConfig(gpus=[0, 1], gpus_per_job=2))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    data = FrontDesk(root).draft_plan()
    assert data["budget_s"] == pytest.approx(0.01 * 3600 / 2) and data["budget_key"] == "max_gpu_hours"


def test_a_plan_fitted_to_the_time_keeps_the_runs_that_fit_in_its_order() -> None:
    """`fit`: phases are weighed in the order they run, each run its estimate plus the measured overhead; a phase
    that does not fit whole keeps what does, the next gets none, each says how many it wanted, and a longer time
    gives them back; a phase without an estimate is left as it is."""
    moves = [Foreseen("optimizer", f"lr {i}", 10.0) for i in range(4)] + \
        [Foreseen("capacity", f"widen {i}", 40.0) for i in range(2)] + [Foreseen("longer_training", "x2", None)]
    p = planmod.draft(moves, diagnosis=[], baseline_failed=False, baseline_s=None, run_budget=7, fix_attempts=2)
    assert [(x.phase, x.runs) for x in p.phases] == [("optimizer", 4), ("capacity", 2), ("longer_training", 1)]
    short = planmod.fit(p, 100.0, overhead_s=2.0)  # 4 x 12 s, then one 42 s run of capacity; 10 s left over
    assert [(x.phase, x.runs, x.wanted) for x in short.phases] == [
        ("optimizer", 4, None), ("capacity", 1, 2), ("longer_training", 1, None)]
    rows = {r["phase"]: r for r in planmod.Progress(short).rows()}
    assert rows["capacity"]["state"] == "planned" and rows["capacity"]["wanted"] == 2
    tiny = planmod.fit(short, 30.0)
    assert [(x.runs, x.wanted) for x in tiny.phases[:2]] == [(3, 4), (0, 2)]
    assert planmod.Progress(tiny).rows()[1]["state"] == "does not fit"
    assert [x.runs for x in planmod.fit(tiny, 10_000.0).phases] == [4, 2, 1]  # the runs come back
    assert planmod.fit(p, None) == p


def test_plan_hours_from_the_command_line_trims_the_plan_and_run_ends_by_it(tmp_path: Path) -> None:
    """As a user does it: `nightlab plan --hours H` fits the drafted plan to H hours (shown, kept with the plan),
    a bad value is one line, and `nightlab run` without a deadline of its own ends by the approved plan's."""
    root = _project(tmp_path, WIDE_TRAIN.replace("import random\n", "import random\nimport time\ntime.sleep(1.0)\n"))
    desk = FrontDesk(root)
    engine = desk.start(load_config(root), mode="autonomous", budget=1)
    engine.run()  # the baseline: a measured duration to estimate from
    engine.store.close()
    full = json.loads(_nightlab(root, "--redraft", "--json").stdout)
    assert full["deadline"] is None and all(not p["wanted"] for p in full["phases"])
    wanted = sum(p["runs"] for p in full["phases"])
    got = _nightlab(root, "--hours", "0.002")  # 7.2 s: a few runs of about a second
    assert got.returncode == 0, got.stderr
    assert "within the deadline (" in got.stdout and "trimmed to fit the time" in got.stdout, got.stdout
    data = json.loads(_nightlab(root, "--json").stdout)  # kept with the plan
    assert data["deadline"] and data["available_key"] == "deadline"
    kept = sum(p["runs"] for p in data["phases"])
    assert 0 < kept < wanted and any(p["wanted"] for p in data["phases"])
    est = sum(p["runs"] * p["run_s"] for p in data["phases"] if p["run_s"])
    assert est <= 0.002 * 3600
    from nightlab.tui.screens.plan import plan_text

    shown = plan_text(FrontDesk(root).plan_view()).plain  # the TUI's plan screen says it too
    assert "the deadline (" in shown and "trimmed to fit the time" in shown, shown
    bad = _nightlab(root, "--until", "25:00")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "HH:MM" in bad.stderr
    assert _nightlab(root, "--hours", "1", "--approve").returncode == 0  # a longer time gives the runs back
    data = json.loads(_nightlab(root, "--json").stdout)
    assert sum(p["runs"] for p in data["phases"]) == wanted and data["approved"]
    later = FrontDesk(root).start(load_config(root), mode="autonomous", budget=1)
    assert later.options.deadline == pytest.approx(data["deadline"])
    assert FrontDesk(root).start(load_config(root), mode="autonomous", deadline=123.0).options.deadline == 123.0


def test_a_phase_where_nothing_fits_the_time_is_passed_over_for_this_session_only(tmp_path: Path) -> None:
    """When the policy's moves of the current phase cannot end in the time left, the follower goes on to the next
    phase (said), without marking the phase exhausted: a later session, with more time, starts with it again."""
    from nightlab.agent.store import Store

    store = Store(tmp_path / "s.db")
    p = planmod.draft([Foreseen("capacity", "widen", 40.0), Foreseen("optimizer", "lr", 10.0)], diagnosis=[],
                      baseline_failed=False, baseline_s=10.0, run_budget=4, fix_attempts=2)
    planmod.save(store, planmod.Plan(p.phases, approved=1.0))
    said: list[str] = []
    follower = planmod.PlanFollower(store, lambda kind, message: said.append(message))
    assert follower.phases() == ("optimizer",)
    follower.nothing_fits("optimizer")
    assert follower.phases() == ("capacity",) and any("fits the time left" in m for m in said)
    assert planmod.load(store, approved=True).exhausted == frozenset()  # type: ignore[union-attr]
    assert planmod.PlanFollower(store, lambda kind, message: None).phases() == ("optimizer",)
