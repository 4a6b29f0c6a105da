"""Early stopping: a run clearly worse than its parent at the same step is stopped with the evidence, its slot goes
to the next run, the reward scores it as a regression; a late bloomer (worse early, best at the end) never is."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from nightlab.agent import early_stop, reward
from nightlab.agent.config import load_config
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.goal import Goal
from nightlab.agent.policy.base import Edit, ExperimentView, PolicyBase, PolicyContext, Proposal
from nightlab.agent.states import RunResult, Status

from helpers import git, make_repo, write_config


def parent(s: float) -> float:
    return 0.5 + 1.5 * math.exp(-s / 20)


def loser(s: float) -> float:  # the same shape, half as bad again all the way
    return 1.5 * parent(s)


def bloomer(s: float) -> float:  # slower at first, lower in the end (e.g. a smaller learning rate, more capacity)
    return 0.2 + 1.8 * math.exp(-s / 40)


def curve(f, seed: int, jitter: float = 0.02, steps: int = 100) -> list[list[float]]:
    r = random.Random(seed)
    return [[s, f(s) * (1 + r.gauss(0, jitter))] for s in range(1, steps + 1)]


def ref_of(seed: int, jitter: float) -> early_stop.Reference:
    noise = early_stop.seed_noise([[curve(parent, seed, jitter), curve(parent, seed + 100, jitter)]], 0.3)
    return early_stop.Reference(1, curve(parent, seed, jitter), False, noise)


@pytest.mark.parametrize("jitter", [0.0, 0.02, 0.05])
def test_a_planted_loser_is_stopped_and_a_late_bloomer_never(jitter: float) -> None:
    assert bloomer(100) < parent(100) < loser(100) and bloomer(30) > parent(30)  # the plants are what they say
    for seed in range(8):
        ref = ref_of(seed, jitter)
        got = early_stop.first_stop(curve(loser, seed + 1, jitter), ref, goal=Goal.MINIMIZE, min_fraction=0.5, margin=3)
        assert got is not None and got.stop and 0.5 <= got.fraction < 0.75, (seed, got)
        assert got.behind >= 3 and "seed noise" in got.evidence and "#1" in got.evidence
        assert early_stop.first_stop(curve(bloomer, seed + 1, jitter), ref, goal=Goal.MINIMIZE, min_fraction=0.5,
                                     margin=3) is None, seed


def restarted(s: float) -> float:  # lower in the end, but a warm restart at 78 % of the run sets it back a while
    return 0.45 + 1.55 * math.exp(-s / 20) + (0.3 * math.exp(-(s - 78) / 8) if s >= 78 else 0.0)


@pytest.mark.parametrize("jitter", [0.0, 0.02, 0.05])
def test_a_late_bloomer_turned_around_late_in_its_run_is_never_stopped(jitter: float) -> None:
    """A run that falls behind only late in its run (a warm restart, a schedule's turn) and still ends ahead: the
    last part of a run saves little and is where schedules turn, so nothing is stopped past `until` (80 %); and a
    run is stopped only when it was already behind a fifth of the run earlier."""
    assert restarted(100) < parent(100) and restarted(85) > 1.1 * parent(85)  # the plant is what it says
    for seed in range(8):
        ref = ref_of(seed, jitter)
        assert early_stop.first_stop(curve(restarted, seed + 1, jitter), ref, goal=Goal.MINIMIZE, min_fraction=0.5,
                                     margin=3) is None, seed
    # a coarse curve (every 5th of 40 epochs) with one bad reading at epoch 35 that ends ahead
    coarse_parent = [[e, parent(2.5 * e)] for e in range(5, 41, 5)]
    noise = early_stop.seed_noise([[coarse_parent, [[e, v * 1.02] for e, v in coarse_parent]]], 0.3)
    blip = [[e, parent(2.5 * e) * (0.97 if e != 35 else 1.4)] for e in range(5, 41, 5)]
    ref = early_stop.Reference(1, coarse_parent, False, noise)
    assert early_stop.first_stop(blip, ref, goal=Goal.MINIMIZE, min_fraction=0.5, margin=3) is None


def test_the_evidence_must_be_beyond_the_seed_noise_at_the_same_step() -> None:
    """Seeds that disagree more in one part of the run (here 70-80 %) ask for more evidence there: a run as far
    behind as the seeds spread there is not stopped there, and is where they agree."""
    noise = early_stop.Noise(0.01, tuple((f / 10, 0.2 if f in (7, 8) else 0.01) for f in range(3, 11)))
    assert noise.at(0.75) == pytest.approx(0.2) and noise.at(0.4) == pytest.approx(0.01)
    ref = [[s, parent(s)] for s in range(1, 101)]
    lost = [[s, 1.3 * parent(s)] for s in range(1, 101)]  # 30 % behind: 30 typical units, 1.5 of the spread at 75 %
    assert not early_stop.judge(lost[:75], ref, noise, min_fraction=0.5).stop  # type: ignore[union-attr]
    assert early_stop.judge(lost[:60], ref, noise, min_fraction=0.5).stop  # type: ignore[union-attr]
    assert early_stop.judge(lost[:75], ref, 0.01, min_fraction=0.5).stop  # type: ignore[union-attr]


def test_nothing_is_judged_too_early_past_the_parent_or_without_measured_noise() -> None:
    ref = ref_of(0, 0.02)
    lost = curve(loser, 1)
    assert early_stop.judge(lost[:45], ref.curve, ref.noise_rel, min_fraction=0.5) is None  # before half the run
    longer = [[s, loser(s)] for s in range(1, 131)]
    assert early_stop.judge(longer, ref.curve, ref.noise_rel) is None  # past the parent's end: nothing to compare
    assert early_stop.judge(lost[:80], ref.curve, None) is None  # a command without {seed}: no noise measured
    # a maximised metric curve: lower is worse
    up = [[s, -v] for s, v in lost[:80]]
    got = early_stop.judge(up, [[s, -v] for s, v in ref.curve], ref.noise_rel, goal=Goal.MAXIMIZE)
    assert got is not None and got.stop


def test_the_seed_noise_is_measured_between_curves() -> None:
    same = curve(parent, 0, 0.0)
    assert early_stop.seed_noise([[same, same]], 0.3) == 0.0
    shifted = [[s, v * 1.1] for s, v in same]
    assert early_stop.seed_noise([[same, shifted]], 0.3) == pytest.approx(0.0673, abs=0.001)  # sd/mean of 1, 1.1
    assert early_stop.seed_noise([[same]], 0.3) is None  # one curve per code: nothing measured


def test_the_reward_scores_a_stopped_run_as_a_regression_not_a_failure() -> None:
    def score(**kw: object) -> dict[str, object]:
        base = dict(stage="training", metric=None, baseline=1.0, best_before=0.9, goal="minimize",
                    noise_floor=0.01, failure_class=None, seconds=10.0, timeout_s=100.0)
        return reward.explain(reward.RewardInput(**{**base, **kw}))  # type: ignore[arg-type]

    stopped = score(behind=4.0)
    assert stopped["improvement"] < 0 and stopped["failure_penalty"] == 0
    assert score(behind=8.0)["reward"] < stopped["reward"] < score()["reward"]
    assert stopped["reward"] > score(failure_class="runtime_error")["reward"]
    assert stopped["improvement"] > -reward.REGRESSION_LOSS
    # exactly what a run that finished 4 noise units behind scores
    finished = score(stage="clean_exit", metric=0.94)
    assert stopped["reward"] == pytest.approx(finished["reward"]) and finished["units"] == pytest.approx(-4)


TRAIN = '''\
"""Loss curves of three known shapes; KIND picks one (the parent's, a loser's, a late bloomer's)."""
import argparse
import json
import math
import random
import time

KIND = "parent"

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
rng = random.Random(seed)
shapes = {
    "parent": lambda s: 0.5 + 1.5 * math.exp(-s / 20),
    "loser": lambda s: 1.5 * (0.5 + 1.5 * math.exp(-s / 20)),
    "bloomer": lambda s: 0.2 + 1.8 * math.exp(-s / 40),
}
pause = {"parent": 0.0, "loser": 0.06, "bloomer": 0.005}[KIND]
f = shapes[KIND]
for step in range(1, 101):
    print(f"step {step} loss {f(step) * (1 + rng.gauss(0, 0.02)):.4f}", flush=True)
    time.sleep(pause)
print(f"final={f(100) * (1 + rng.gauss(0, 0.005)):.4f}")
'''


class Kinds(PolicyBase):
    """Proposes the given KINDs in order, each from the baseline."""

    name = "kinds"

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = list(kinds)

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if not self.kinds:
            return None
        kind = self.kinds.pop(0)
        return Proposal(title=f"KIND = {kind}", rationale="a planted curve",
                        edits=[Edit("train.py", 'KIND = "parent"', f'KIND = "{kind}"')], knobs={"KIND": kind},
                        parent_id=ctx.baseline_id)

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        return None


def shaped_project(path: Path, **autonomy: object) -> Path:
    from nightlab.agent.config import AutonomyConfig, MetricConfig

    repo = make_repo(path, {"train.py": TRAIN})
    write_config(repo, metric=MetricConfig(name="final", goal="minimize"),
                 autonomy=AutonomyConfig(early_stop_check_s=0.1, **autonomy))  # type: ignore[arg-type]
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    return repo


def test_the_engine_stops_a_losing_run_and_lets_a_late_bloomer_finish(tmp_path: Path) -> None:
    repo = shaped_project(tmp_path / "p")
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=5, poll_s=0.05),
                 policy=Kinds(["loser", "bloomer"]))
    eng.run()
    exps = {e.title: e for e in eng.store.experiments()}
    lost, late = exps["KIND = loser"], exps["KIND = bloomer"]
    assert lost.status == Status.STOPPED_EARLY and lost.run_result == RunResult.STOPPED_EARLY
    assert lost.failure_class is None and lost.metric is None
    assert "seed noise" in (lost.diagnosis or "") and f"parent #{lost.parent_id}" in (lost.diagnosis or "")
    ev = [x for x in eng.store.events() if x["kind"] == "stopped_early"]
    assert len(ev) == 1 and ev[0]["experiment_id"] == lost.id and json.loads(ev[0]["data"])["behind"] >= 3
    steps = [int(p[0]) for p in lost.loss_curve]
    assert 50 <= max(steps) < 100  # stopped after half the parent's run, before its end
    assert lost.reward is not None and late.reward is not None and lost.reward < late.reward
    assert not eng.store.proposals_on(lost.id)  # a regression, not a failure: no fix is tried
    # the late bloomer ran to its end and is the best
    assert late.status == Status.KEPT and max(int(p[0]) for p in late.loss_curve) == 100
    assert eng.ledger.best()[0] == late.id
    assert not eng.store.open_jobs() and eng.summary().state == "done"


def test_one_key_turns_early_stopping_off(tmp_path: Path) -> None:
    repo = shaped_project(tmp_path / "p", early_stop=False)
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=3, poll_s=0.05),
                 policy=Kinds(["loser"]))
    eng.run()
    lost = next(e for e in eng.store.experiments() if e.title == "KIND = loser")
    assert lost.status == Status.DISCARDED and max(int(p[0]) for p in lost.loss_curve) == 100
    assert not [x for x in eng.store.events() if x["kind"] == "stopped_early"]


def test_a_hibernating_session_still_stops_a_losing_run(tmp_path: Path) -> None:
    """`run --detach`: the engine sleeps while the runs train. Its watch (agent/sentinel.py) reads the running curve
    with the engine's own rule and wakes the engine, which stops the loser with the evidence, as it would awake."""
    import time

    from nightlab.agent.states import JobState, SessionState
    from nightlab.sandbox import runner

    repo = shaped_project(tmp_path / "p")
    slow = repo / "train.py"  # the loser takes 40 s: 12 s (50-80 %) for a watch and a wake to start on a busy machine
    slow.write_text(slow.read_text().replace('"loser": 0.06', '"loser": 0.4'))
    git(repo, "commit", "-qam", "a slower loser")
    policy = Kinds(["loser"])

    def engine(wake: bool) -> Engine:
        eng = Engine(repo, load_config(repo), policy=policy, options=EngineOptions(
            mode="autonomous", budget=3, poll_s=0.05, detach=True, wake=wake))
        eng.launcher.wake_argv = lambda: ["true"]  # type: ignore[method-assign]  # the test wakes this policy itself
        return eng

    eng = engine(False)
    eng.run()
    store = eng.store

    def loser_job():  # type: ignore[no-untyped-def]
        ids = [e.id for e in store.experiments() if e.title == "KIND = loser"]
        return store.latest_job(ids[0]) if ids else None

    # drive the session as its jobs' wrappers would, until it hibernates with the loser training
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, [x["message"] for x in store.events()][-8:]
        session = store.latest_session()
        job = loser_job()
        if job is not None and job.state == JobState.RUNNING and session.state == SessionState.HIBERNATING:
            break
        if session.state == SessionState.HIBERNATING and \
                any(runner.read_status(j.run_dir, j.wrapper) is not None for j in store.open_jobs()):
            engine(True).run()
        time.sleep(0.1)
    # nobody but the watch wakes the engine now: the loser's own end wakes nothing (wake_argv above)
    until_ended = time.monotonic() + 120
    while runner.read_status(loser_job().run_dir, loser_job().wrapper) is None:
        assert time.monotonic() < until_ended, "the loser was never stopped"
        time.sleep(0.2)
    assert "to be stopped early: waking the engine" in (repo / ".nightlab" / "sentinel.log").read_text()
    engine(True).run()  # collect it, as the loser's wrapper would have woken the engine
    lost = next(e for e in store.experiments() if e.title == "KIND = loser")
    assert lost.status == Status.STOPPED_EARLY and lost.run_result == RunResult.STOPPED_EARLY
    assert max(int(p[0]) for p in lost.loss_curve) < 100
    assert [x for x in store.events() if x["kind"] == "stopped_early" and x["experiment_id"] == lost.id]
