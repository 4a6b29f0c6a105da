"""Properties of the reward: monotone in stage and metric, one scale for both goals, bounded."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from nightlab.agent.reward import R_MAX, R_MIN, Goal, RewardInput, explain, reward
from nightlab.sandbox.stages import STAGES

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe_value = st.one_of(st.none(), finite)
stage = st.sampled_from(["", *STAGES])
failure = st.one_of(st.none(), st.sampled_from(["protected_modified", "timeout", "oom", "crash", "syntax_error",
                                                "nan", "something_new"]))
GOALS: list[Goal] = ["maximize", "minimize"]
goal = st.sampled_from(GOALS)
noise = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e3, allow_nan=False))
seconds = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)
timeout = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)


@st.composite
def inputs(draw: st.DrawFn) -> RewardInput:
    return RewardInput(
        stage=draw(stage), metric=draw(maybe_value), baseline=draw(maybe_value), best_before=draw(maybe_value),
        goal=draw(goal), noise_floor=draw(noise), failure_class=draw(failure), seconds=draw(seconds),
        timeout_s=draw(timeout),
    )


@settings(max_examples=300)
@given(inputs(), stage, stage)
def test_later_stage_never_scores_below_earlier(x: RewardInput, a: str, b: str) -> None:
    early, late = sorted([a, b], key=lambda s: -1 if not s else STAGES.index(s))
    assert reward(replace(x, stage=late)) >= reward(replace(x, stage=early))


@settings(max_examples=300)
@given(inputs(), finite, finite)
def test_better_metric_never_scores_below_worse(x: RewardInput, m1: float, m2: float) -> None:
    lo, hi = sorted([m1, m2])
    better, worse = (hi, lo) if x.goal == "maximize" else (lo, hi)
    assert reward(replace(x, metric=better)) >= reward(replace(x, metric=worse))


@settings(max_examples=300)
@given(inputs())
def test_minimising_m_scores_exactly_like_maximising_minus_m(x: RewardInput) -> None:
    neg = lambda v: None if v is None else -v
    as_min = replace(x, goal="minimize")
    as_max = replace(x, goal="maximize", metric=neg(x.metric), baseline=neg(x.baseline),
                     best_before=neg(x.best_before))
    assert math.isclose(reward(as_min), reward(as_max), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=300)
@given(inputs())
def test_bounded(x: RewardInput) -> None:
    r = reward(x)
    assert math.isfinite(r)
    assert R_MIN <= r <= R_MAX


def _run(**kw: object) -> RewardInput:
    base: dict[str, object] = dict(stage="clean_exit", metric=0.9, baseline=0.8, best_before=0.85, goal="maximize",
                                   noise_floor=0.01, failure_class=None, seconds=60.0, timeout_s=600.0)
    base.update(kw)
    return RewardInput(**base)  # type: ignore[arg-type]


def test_improvement_within_the_noise_is_no_improvement() -> None:
    assert explain(_run(metric=0.855))["improvement"] == 0.0
    assert explain(_run(metric=0.845))["improvement"] == 0.0
    assert explain(_run(metric=0.87))["improvement"] > 0.0
    assert explain(_run(metric=0.83))["improvement"] < 0.0


def test_regression_costs_less_than_a_win_gains() -> None:
    assert explain(_run(metric=10.0))["improvement"] > 0.99
    assert -0.5 <= explain(_run(metric=-10.0))["improvement"] < -0.49


def test_missing_or_non_finite_metric_gives_no_improvement_term() -> None:
    for m in (None, float("nan"), float("inf")):
        assert explain(_run(metric=m))["improvement"] == 0.0


def test_protected_modified_ignores_the_metric_and_is_strongly_negative() -> None:
    info = explain(_run(metric=0.99, failure_class="protected_modified"))
    assert info["improvement"] == 0.0 and info["metric_ignored"]
    assert reward(_run(metric=0.99, failure_class="protected_modified")) < reward(
        _run(stage="started", metric=None, failure_class="crash"))


def test_timeout_is_a_mild_failure_and_duration_costs_a_little() -> None:
    fast, slow = reward(_run(seconds=1.0)), reward(_run(seconds=599.0))
    assert 0 < fast - slow < 0.1
    assert reward(_run(failure_class="timeout", seconds=600.0)) > reward(_run(failure_class="crash", seconds=600.0))


def test_baseline_is_the_reference_when_there_is_no_best_yet() -> None:
    info = explain(_run(best_before=None, metric=0.9))
    assert info["reference"] == 0.8 and info["improvement"] > 0


def test_stage_credit_spans_zero_to_half() -> None:
    assert explain(_run(stage=""))["stage_credit"] == 0.0
    assert explain(_run(stage="clean_exit"))["stage_credit"] == 0.5
    credits = [explain(_run(stage=s))["stage_credit"] for s in STAGES]
    assert credits == sorted(credits) and len(set(credits)) == len(STAGES)
