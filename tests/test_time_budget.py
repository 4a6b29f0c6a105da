"""A deadline and a compute budget: no run starts that could not end in time (predicted from measured runs), and the
session ends in time even with budget left."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightlab.agent.config import load_config
from nightlab.agent.engine import Engine, EngineOptions, open_store
from nightlab.agent.proposal import Edit, PolicyContext, Proposal
from nightlab.agent.states import JobState, SessionState, Status
from nightlab.commands import deadline_of

from helpers import TINY_TRAIN, ScriptedPolicy, git, make_repo, until, write_config

# every run takes a second of wall clock at least
SLOW_TRAIN = TINY_TRAIN.replace("import random\n", "import random\nimport time\ntime.sleep(1.0)\n")


def slow_project(path: Path, **overrides: object) -> Path:
    repo = make_repo(path, {"train.py": SLOW_TRAIN})
    write_config(repo, **overrides)
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    return repo


def started_events(eng: Engine) -> list[dict[str, object]]:
    return [e for e in eng.store.events() if e["kind"] == "started"]


def test_a_deadline_shorter_than_the_budget_ends_the_session_in_time(tmp_path: Path) -> None:
    repo = slow_project(tmp_path / "p")
    deadline = time.time() + 8
    policy = ScriptedPolicy([str(v) for v in (0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.2, 0.3, 0.4, 0.5)])
    eng = Engine(repo, load_config(repo), policy=policy,
                 options=EngineOptions(mode="autonomous", budget=30, poll_s=0.1, deadline=deadline))
    summary = eng.run()
    session = eng.store.session(summary.session_id)
    assert session.state == SessionState.DONE and session.runs_started < 30  # budget left: the clock ended it
    assert time.time() < deadline + 10  # ended in time (the slack: a last job stopped at the deadline winds down)
    assert not eng.store.open_jobs()
    jobs = eng.store.jobs()
    assert jobs and all(j.state in (JobState.ENDED, JobState.LOST) for j in jobs)
    # no run started after the deadline; a run cut off at the deadline (mispredicted) waits, queued, for the next one
    assert all((j.started or 0) < deadline for j in jobs)
    for e in eng.store.experiments_in(Status.QUEUED):
        assert e.attempts <= 1
    why = [e for e in eng.store.events() if e["kind"] == "out_of_time"]
    assert why and ("deadline" in why[0]["message"])
    assert [e for e in eng.store.events() if e["kind"] == "done"]


def test_a_compute_budget_ends_the_session_before_it_is_spent(tmp_path: Path) -> None:
    from nightlab.agent.config import AutonomyConfig

    repo = slow_project(tmp_path / "p", autonomy=AutonomyConfig(max_cpu_hours=4 / 3600))  # 4 CPU-seconds
    eng = Engine(repo, load_config(repo), policy=ScriptedPolicy(["0.1", "0.2", "0.3"]),
                 options=EngineOptions(mode="autonomous", budget=20, poll_s=0.1))
    summary = eng.run()
    assert summary.state == "done" and eng.store.session(summary.session_id).runs_started < 5
    cpu, _ = eng.clock.spent(summary.session_id)
    assert cpu * 3600 < 4 + max(j.ended - j.started for j in eng.store.jobs() if j.ended and j.started)
    why = [e for e in eng.store.events() if e["kind"] == "out_of_time"]
    assert why and "max_cpu_hours" in why[0]["message"]


def test_a_woken_session_keeps_its_deadline(tmp_path: Path) -> None:
    repo = slow_project(tmp_path / "p")
    deadline = time.time() + 3600
    eng = Engine(repo, load_config(repo), policy=ScriptedPolicy([]),
                 options=EngineOptions(mode="autonomous", budget=1, poll_s=0.1, deadline=deadline, detach=True))
    eng.run()
    woken = Engine(repo, load_config(repo), policy=ScriptedPolicy([]),
                   options=EngineOptions(mode="autonomous", detach=True, wake=True, poll_s=0.1))
    woken.run()
    assert woken.clock.deadline == deadline


def test_hours_and_until_are_read_as_a_deadline() -> None:
    now = dt.datetime(2026, 12, 2, 22, 30).timestamp()
    assert deadline_of(8, None, now) == now + 8 * 3600
    assert deadline_of(None, (7, 0), now) == dt.datetime(2026, 12, 3, 7, 0).timestamp()  # tomorrow morning
    assert deadline_of(None, (23, 15), now) == dt.datetime(2026, 12, 2, 23, 15).timestamp()  # later today
    assert deadline_of(None, None, now) is None


def test_a_bad_deadline_is_one_clear_line() -> None:
    for args, words in ((["--hours", "0"], "above 0"), (["--hours", "soon"], "number of hours"),
                        (["--until", "25:00"], "HH:MM"), (["--until", "7"], "HH:MM"),
                        (["--hours", "1", "--until", "07:00"], "not allowed with")):
        got = subprocess.run([sys.executable, "-m", "nightlab", "run", *args], capture_output=True, text=True)
        assert got.returncode != 0 and "Traceback" not in got.stderr, got.stderr
        assert words in got.stderr, (args, got.stderr)


def test_a_gpu_budget_counts_the_gpus_each_run_was_given(tmp_path: Path) -> None:
    """`max_gpu_hours` ends the session: each run is counted with the GPUs its slot gave it (two here, named in
    `[slots] gpus`; the jobs only see CUDA_VISIBLE_DEVICES, so no GPU is needed), not with none."""
    from nightlab.agent.config import AutonomyConfig, SlotsConfig

    repo = slow_project(tmp_path / "p", autonomy=AutonomyConfig(max_gpu_hours=6 / 3600),  # 6 GPU-seconds
                        slots=SlotsConfig(gpus=[0, 1], gpus_per_job=2))
    eng = Engine(repo, load_config(repo), policy=ScriptedPolicy(["0.1", "0.2", "0.3", "0.4", "0.5"]),
                 options=EngineOptions(mode="autonomous", budget=20, poll_s=0.1))
    summary = eng.run()
    assert summary.state == "done" and eng.store.session(summary.session_id).runs_started < 6
    jobs = [j for j in eng.store.jobs() if j.ended and j.started]
    assert jobs and all(j.slot == "gpu0+gpu1" for j in jobs)
    _, gpu = eng.clock.spent(summary.session_id)
    seconds = sum(j.ended - j.started for j in jobs)
    assert gpu * 3600 == pytest.approx(2 * seconds)  # two GPUs each
    assert gpu * 3600 < 6 + 2 * max(j.ended - j.started for j in jobs)
    why = [e for e in eng.store.events() if e["kind"] == "out_of_time"]
    assert why and "max_gpu_hours" in why[0]["message"]


def test_a_job_counts_the_gpus_it_saw_and_a_cluster_job_what_was_asked(tmp_path: Path) -> None:
    """A CPU job given a GPU machine's slot saw no GPU (its spec's CUDA_VISIBLE_DEVICES is empty): no GPU-hours; a
    scheduler's job is counted with the GPUs `[backend] gpus_per_job` asked for."""
    from nightlab.agent import time_budget
    from nightlab.agent.store import Store
    from nightlab.sandbox.spec import SPEC_FILE, JobSpec

    store = Store(tmp_path / "s.db")
    clock = time_budget.TimeBudget(store, None, None, 1.0, remote_gpus=4)
    seen = {"": 0, "0": 1, "0,1,2": 3}
    for visible, gpus in seen.items():
        e = store.add_experiment(title=visible)
        run_dir = tmp_path / f"run{e.id}"
        run_dir.mkdir()
        JobSpec(job_id=str(e.id), argv=["true"], cwd=str(tmp_path), run_dir=str(run_dir),
                env={"CUDA_VISIBLE_DEVICES": visible}, timeout_s=1).write(run_dir / SPEC_FILE)
        job = store.add_job(e.id, str(run_dir), str(run_dir / "output.log"), "gpu0")
        assert clock.share(job) == (1, gpus)
    gone = store.add_job(e.id, str(tmp_path / "nowhere"), "", "gpu1+gpu2")  # no spec: the slot's GPUs
    assert clock.share(gone) == (1, 2)
    remote = store.add_job(e.id, str(tmp_path / "r"), "", None)
    store.update_job(remote.id, backend="slurm")
    assert clock.share(store.job(remote.id)) == (1, 4)


# the run's length is a setting of its own: a run of SLEEP = 0.2 takes a fraction of the baseline's
SLEEPY_TRAIN = TINY_TRAIN.replace("import random\n", "import random\nimport time\n").replace(
    "LOG_EVERY = 1\n", "LOG_EVERY = 1\nSLEEP = 4.0\ntime.sleep(SLEEP)\n")


class CostAwarePolicy(ScriptedPolicy):
    """Proposes `SLEEP = v` moves, each with its predicted run seconds, skipping (as `unfit`) those that cannot end in
    the time the engine says is left — what the builtin policy does with its cost model."""

    name = "cost-aware"

    def __init__(self, moves: list[tuple[float, float]]) -> None:
        super().__init__([])
        self.moves = list(moves)
        self.unfit: tuple[tuple[str, float], ...] = ()

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        left = getattr(ctx, "time_left_s", None)
        self.unfit = tuple((f"SLEEP = {v}", s) for v, s in self.moves if left is not None and s > left)
        fits = [(v, s) for v, s in self.moves if left is None or s <= left]
        if not fits:
            return None
        self.moves.remove(fits[0])
        v, s = fits[0]
        return Proposal(title=f"SLEEP = {v}", rationale="a shorter run", parent_id=ctx.baseline_id,
                        edits=[Edit("train.py", "SLEEP = 4.0", f"SLEEP = {v}")], knobs={"SLEEP": v}, predicted_s=s)


def test_when_time_is_short_cheaper_runs_go_on_and_the_session_ends_only_when_none_fits(tmp_path: Path) -> None:
    """The compute budget left after a 4 s baseline is less than a run like it, but cheaper candidates fit: each run
    is judged by its own prediction, the one that cannot end in time is skipped with the reason said, the cheap ones
    run, and the session ends when only the long one is left — not when a typical (measured) run stops fitting."""
    from nightlab.agent.config import AutonomyConfig

    repo = make_repo(tmp_path / "p", {"train.py": SLEEPY_TRAIN})
    write_config(repo, autonomy=AutonomyConfig(max_cpu_hours=12 / 3600))  # 12 CPU-seconds, one thread a job
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    policy = CostAwarePolicy([(9.0, 9.0), (0.2, 0.3), (0.1, 0.2)])
    eng = Engine(repo, load_config(repo), policy=policy,
                 options=EngineOptions(mode="autonomous", budget=10, poll_s=0.1))
    summary = eng.run()
    assert summary.state == "done"
    ran = {e.title for e in eng.store.experiments() if eng.store.jobs(experiment_id=e.id)}
    assert {"SLEEP = 0.2", "SLEEP = 0.1"} <= ran and "SLEEP = 9.0" not in ran
    said = " ".join(str(e["message"]) for e in eng.store.events() if e["kind"] == "skipped")
    assert "SLEEP = 9.0 (about 9 s)" in said and "cannot end in time" in said
    why = [str(e["message"]) for e in eng.store.events() if e["kind"] == "out_of_time"]
    assert why and "cheapest run the policy could propose takes about" in why[-1] and "max_cpu_hours" in why[-1]
    cpu, _ = eng.clock.spent(summary.session_id)
    assert cpu * 3600 < 12


def test_a_run_is_judged_by_its_own_predicted_duration_not_its_parents(tmp_path: Path) -> None:
    """A proposal predicted to run far longer than its parent (a widening, a longer training) is not started when it
    cannot end before the deadline, though its parent's duration would fit; it waits, queued, with the reason."""
    repo = slow_project(tmp_path / "p")
    deadline = time.time() + 60

    class Long(ScriptedPolicy):
        def propose(self, ctx: PolicyContext) -> Proposal | None:
            got = super().propose(ctx)
            if got is not None:
                got.predicted_s = 600.0
            return got

    eng = Engine(repo, load_config(repo), policy=Long(["0.1"]),
                 options=EngineOptions(mode="autonomous", budget=5, poll_s=0.1, deadline=deadline))
    summary = eng.run()
    assert time.time() < deadline  # it did not wait for the deadline
    long = next(e for e in eng.store.experiments() if e.title == "LR = 0.1")
    assert not eng.store.jobs(experiment_id=long.id) and long.status == Status.QUEUED
    assert long.predicted_s == 600.0
    why = [str(e["message"]) for e in eng.store.events() if e["kind"] == "out_of_time"]
    assert any(f"#{long.id} not started: this run is predicted to take about 6" in w for w in why), why
    assert eng.store.session(summary.session_id).state == SessionState.DONE


def test_a_scheduler_jobs_queue_wait_counts_for_the_deadline_not_the_compute_budget(tmp_path: Path) -> None:
    """A SLURM or Ray job that waited 100 s in the queue and ran 10 s used 10 s of compute; the wait is part of the
    wall clock the next run is predicted to take (the overhead over its own seconds), as far as it was measured."""
    from nightlab.agent import time_budget
    from nightlab.agent.states import Mode, RunResult
    from nightlab.agent.store import Store

    store = Store(tmp_path / "s.db")
    sid = store.create_session("p", Mode.AUTONOMOUS, "builtin", 5, None, None).id
    e = store.add_experiment(session_id=sid, title="on slurm", seconds=10.0, run_result=RunResult.SUCCEEDED)
    job = store.add_job(e.id, str(tmp_path / "r"), "", None)
    store.update_job(job.id, backend="slurm", state=JobState.ENDED, started=1000.0, run_started=1100.0, ended=1110.0)
    clock = time_budget.TimeBudget(store, 2000.0, 1.0, None)
    cpu, _ = clock.spent(sid, now=1500.0)
    assert cpu * 3600 == pytest.approx(10.0)
    assert clock.overhead() == pytest.approx(100.0)
    child = store.add_experiment(session_id=sid, parent_id=e.id, title="child", predicted_s=20.0)
    assert clock.predict(child) == pytest.approx(120.0)
    assert clock.blocks(child, sid, now=1900.0) and not clock.blocks(child, sid, now=1800.0)


def test_runs_going_at_once_share_the_compute_budget_with_the_next(tmp_path: Path) -> None:
    """With several runs at once, a run that starts now shares the budget with those still going: their predicted
    remainder counts, so a run whose own share would fit is not started when, with theirs, it would pass the budget."""
    from nightlab.agent import time_budget
    from nightlab.agent.states import Mode
    from nightlab.agent.store import Store

    store = Store(tmp_path / "s.db")
    sid = store.create_session("p", Mode.AUTONOMOUS, "builtin", 5, None, None).id
    going = store.add_experiment(session_id=sid, title="going", predicted_s=100.0)
    job = store.add_job(going.id, str(tmp_path / "r"), "", "cpu0")
    store.update_job(job.id, state=JobState.RUNNING, started=1000.0)
    clock = time_budget.TimeBudget(store, None, 150 / 3600, None)
    nxt = store.add_experiment(session_id=sid, title="next", predicted_s=60.0)
    cpu, _ = clock.spent(sid, now=1010.0)
    assert cpu * 3600 == pytest.approx(10.0)  # alone, 10 + 60 would fit in 150
    why = clock.blocks(nxt, sid, now=1010.0)
    assert why and "more for the runs going" in why  # 10 spent + 90 to come + 60 > 150
    assert clock.seconds_left(sid, now=1010.0) == pytest.approx(50.0)
    store.update_job(job.id, state=JobState.ENDED, ended=1050.0)  # it ended sooner than predicted: 50 spent
    assert clock.blocks(nxt, sid, now=1060.0) is None


def test_a_hibernating_sessions_job_still_going_at_the_deadline_is_stopped_and_requeued(tmp_path: Path) -> None:
    """`run --detach --hours`: the engine hibernates while its baseline runs; the job outlives the deadline (it waits
    for a file that never comes), so the session's watch wakes the engine at the deadline, which stops the job and
    re-queues it for the next session; the session ends, nothing is left running."""
    gated = "import os, time\nprint('started', flush=True)\nwhile not os.path.exists('go'):\n    time.sleep(0.1)\n"
    repo = make_repo(tmp_path / "p", {"train.py": gated})
    write_config(repo)
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    hours = 8 / 3600
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "3",
                          "--hours", f"{hours:.6f}", "--detach"], cwd=repo, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    deadline = started + 8

    def ended() -> bool:
        s = open_store(repo).latest_session()
        return s is not None and s.state == SessionState.DONE and not open_store(repo).open_jobs()

    until(ended, "the session ended at its deadline", timeout=90)
    assert time.time() < deadline + 60  # the watch looks at most every 30 s, then the stopped job winds down
    store = open_store(repo)
    (job,) = store.jobs()
    assert job.state == JobState.ENDED and (job.started or 0) < deadline
    status = json.loads((Path(job.run_dir) / "status.json").read_text())
    assert status["state"] == "killed" and status["reason"] == "deadline"
    assert store.experiment(1).status == Status.QUEUED  # waits for the next session, its attempt not spent
    assert [e for e in store.events() if e["kind"] == "deadline" and e["experiment_id"] == 1]


def test_a_yes_to_go_over_the_compute_budget_buys_a_budget_more_from_what_was_spent(tmp_path: Path) -> None:
    """[autonomy] ask_over_budget: runs still going at the ask can end past the limit (on a loaded machine they run
    long). A yes then grants one budget more counted from what was spent when it was given, not a second budget on
    top of the first — which those runs may already have used, so that the session would ask again at once."""
    from nightlab.agent import time_budget
    from nightlab.agent.states import ApprovalKind, ApprovalState, Mode, RunResult
    from nightlab.agent.store import Store

    store = Store(tmp_path / "s.db")
    sid = store.create_session("p", Mode.AUTONOMOUS, "builtin", 5, None, None).id
    clock = time_budget.TimeBudget(store, None, 100 / 3600, None, ask_over_budget=True)
    t0 = time.time() - 200  # the yes below is given now
    # two runs predicted to fit ended at 130 CPU-seconds: 30 past the budget of 100
    for began, ended in ((t0, t0 + 60), (t0, t0 + 70)):
        e = store.add_experiment(session_id=sid, title="long", seconds=ended - began, run_result=RunResult.SUCCEEDED)
        job = store.add_job(e.id, str(tmp_path / f"r{e.id}"), "", "cpu0")
        store.update_job(job.id, state=JobState.ENDED, started=began, ended=ended)
    nxt = store.add_experiment(session_id=sid, title="next", predicted_s=20.0)
    assert clock.asking(sid, now=t0 + 100)  # over: a person is asked
    (ask,) = store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=sid)
    assert store.decide(ask.id, ApprovalState.APPROVED, "me")
    cpu_limit, _ = clock.limits(sid)
    assert cpu_limit is not None and cpu_limit * 3600 == pytest.approx(230.0)  # 130 spent + 100, not 2 x 100
    later = time.time() + 1
    assert clock.blocks(nxt, sid, now=later) is None and clock.asking(sid, now=later) is None  # no ask at once
    # that run and one more use the new budget up: asked again, the reason naming the extended limit
    for began, ended in ((later, later + 60), (later + 100, later + 150)):
        e = store.add_experiment(session_id=sid, title="more", seconds=ended - began, run_result=RunResult.SUCCEEDED)
        job = store.add_job(e.id, str(tmp_path / f"r{e.id}"), "", "cpu0")
        store.update_job(job.id, state=JobState.ENDED, started=began, ended=ended)
        if began == later:  # the first run after the yes spends from the new budget of 100 s
            assert clock.seconds_left(sid, now=ended) == pytest.approx(40.0)
    why = clock.asking(sid, now=later + 200)
    assert why and "extended to 0.0639 by 1 yes" in why, why
    # without the checkpoint the budget is the budget
    plain = time_budget.TimeBudget(store, None, 100 / 3600, None)
    assert plain.limits(sid)[0] == pytest.approx(100 / 3600) and plain.blocks(nxt, sid, now=later + 200)


def test_a_yes_buys_the_next_run_even_when_one_run_costs_more_than_a_budget(tmp_path: Path) -> None:
    """A budget set small, or runs slowed by a busy machine: the cheapest run costs more than the whole budget a yes
    adds. The yes still lets the next run start (it is not asked about again at once, forever); once that run has
    started the budget counts as before, and the session asks again."""
    from nightlab.agent import time_budget
    from nightlab.agent.states import ApprovalKind, ApprovalState, Mode, RunResult
    from nightlab.agent.store import Store

    store = Store(tmp_path / "s.db")
    sid = store.create_session("p", Mode.AUTONOMOUS, "builtin", 5, None, None).id
    clock = time_budget.TimeBudget(store, None, 6 / 3600, None, ask_over_budget=True)
    t0 = time.time() - 100
    e = store.add_experiment(session_id=sid, title="slow", seconds=9.0, run_result=RunResult.SUCCEEDED)
    job = store.add_job(e.id, str(tmp_path / "r1"), "", "cpu0")
    store.update_job(job.id, state=JobState.ENDED, started=t0, ended=t0 + 9)
    nxt = store.add_experiment(session_id=sid, title="next", predicted_s=9.0)
    assert clock.asking(sid) and clock.blocks(nxt, sid)
    (ask,) = store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=sid)
    assert store.decide(ask.id, ApprovalState.APPROVED, "me")
    later = time.time() + 1
    # 9 spent, the limit 9 + 6: a 9-second run does not fit, but the yes was for it
    assert clock.limits(sid)[0] == pytest.approx(15 / 3600)
    assert clock.blocks(nxt, sid, now=later) is None and clock.asking(sid, now=later) is None
    assert clock.seconds_left(sid, now=later) is None  # the policy is not told to skip every candidate
    assert len(store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=sid)) == 1
    job = store.add_job(nxt.id, str(tmp_path / "r2"), "", "cpu0")
    store.update_job(job.id, state=JobState.ENDED, started=later, ended=later + 9)
    why = clock.asking(sid, now=later + 10)  # that run spent it: asked again
    assert why and "extended to" in why, why
    assert len(store.approvals_of(kind=ApprovalKind.COMPUTE, session_id=sid)) == 2
