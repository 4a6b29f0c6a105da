"""The reward module: one scalar per experiment step, so nightlab can learn which actions pay off.

A run's reward has four parts:

    r = stage_credit + improvement − duration_penalty − failure_penalty

    stage_credit     = 0.5 · (k + 1) / len(STAGES)        k = index of the stage reached, −1 for none
                       started 0.0625 … clean_exit 0.5 (partial credit: a crash in the first optimiser step is worth
                       more than a crash in the imports, because the edit that caused it got further)
    reference        = best_before if known, else baseline; none → improvement 0 (nothing to compare with)
    scale            = max(noise_floor, 0.01 · |baseline| (|reference| without a baseline), 1e-12)
    u                = s · (metric − reference) / scale   s = +1 for "maximize", −1 for "minimize"
    u'               = sign(u) · max(|u| − 1, 0)           within one noise unit is no evidence either way
    improvement      = tanh(u' / 2)         if u' ≥ 0      in [0, 1): two units past the noise ≈ 0.46
                     = 0.5 · tanh(u' / 2)   if u' < 0      in (−0.5, 0]: a regression costs at most half a win
    duration_penalty = 0.1 · clamp(seconds / timeout_s, 0, 1)   a slow run pays a little, an instant one nothing
    failure_penalty  = FAILURE_PENALTY[failure_class]      0 without a failure; DEFAULT_FAILURE_PENALTY if unknown

A run stopped early (early_stop.py: its curve clearly worse than its parent's at the same step) has no final metric;
it is scored exactly like a run that finished that far behind, never as a failure: with b = how many noise units
behind its parent it was when stopped, improvement = 0.5 · tanh(−max(b − 1, 0) / 2), the full stage credit (it was
stopped while it worked) and no failure penalty.

A metric that is missing or not finite gives improvement 0, and so does any metric of a run whose failure class
invalidates it (protected files modified: its number is not evidence). Why these shapes:
- normalising by the noise floor (the seed-to-seed standard deviation) makes "better than noise" the unit, and
  the 1 %-of-baseline floor keeps a zero measured noise from blowing a tiny change up; the dead zone is the design
  rule that improvements smaller than the measured seed noise are not improvements;
- the sign flip and |baseline| make minimised and maximised metrics score on one scale: minimising m scores
  exactly like maximising −m;
- every part is monotone in its input and independent of the others, so with everything else equal a later stage
  never scores below an earlier one and a better metric never below a worse one (tests/test_reward.py checks
  both with hypothesis), and the total stays within [R_MIN, R_MAX] = [−1.6, 1.5].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nightlab.agent.goal import Goal
from nightlab.sandbox.stages import STAGES, stage_index

__all__ = [
    "DEFAULT_FAILURE_PENALTY",
    "FAILURE_PENALTY",
    "INVALIDATING_FAILURES",
    "R_MAX",
    "R_MIN",
    "RewardInput",
    "explain",
    "reward",
]

STAGE_WEIGHT = 0.5
IMPROVEMENT_GAIN = 1.0  # the improvement term's ceiling
REGRESSION_LOSS = 0.5  # the improvement term's floor is −REGRESSION_LOSS
TEMPERATURE = 2.0  # noise units past the dead zone per tanh unit
RELATIVE_FLOOR = 0.01  # smallest scale, as a fraction of |baseline|
EPS = 1e-12
DURATION_WEIGHT = 0.1

# failure class → penalty. The agent's own faults (an edit that does not parse, touching protected files) cost
# most; what a good idea can still run into (a timeout, running out of memory) costs little.
FAILURE_PENALTY: dict[str, float] = {  # keys are nightlab.agent.diagnose.FAILURE_CLASSES
    "protected_modified": 1.0,
    "syntax_error": 0.4,
    "name_error": 0.4,
    "attribute_error": 0.35,
    "import_error": 0.35,
    "argument_error": 0.35,
    "shape_mismatch": 0.3,
    "dtype_error": 0.3,
    "device_error": 0.3,
    "key_error": 0.3,
    "value_error": 0.3,
    "assertion_error": 0.3,
    "runtime_error": 0.3,
    "file_not_found": 0.3,
    "launch_error": 0.3,
    "unknown": 0.3,
    "no_metric": 0.25,
    "nan_metric": 0.2,
    "nan_loss": 0.2,
    "oom": 0.2,
    "worker_error": 0.2,
    "log_flood": 0.2,
    "fork_storm": 0.2,
    "disk_full": 0.1,
    "compile_error": 0.1,  # the machine lacks a compiler: says little about the idea
    "timeout": 0.1,
    "killed": 0.0,  # stopped by the user: says nothing about the idea
    "interrupted": 0.0,
    "lost": 0.0,
}
DEFAULT_FAILURE_PENALTY = 0.3
INVALIDATING_FAILURES = frozenset({"protected_modified"})

R_MIN = -REGRESSION_LOSS - DURATION_WEIGHT - max(max(FAILURE_PENALTY.values()), DEFAULT_FAILURE_PENALTY)
R_MAX = STAGE_WEIGHT + IMPROVEMENT_GAIN



@dataclass(frozen=True)
class RewardInput:
    """Everything the reward depends on for one run.

    `stage` is a name from STAGES ("" for not even started); `metric` the run's final value (None if it reported
    none); `baseline` the unchanged code's value; `best_before` the best value before this run; `noise_floor` the
    measured seed-to-seed standard deviation (0 if unknown); `failure_class` None for a clean run; `behind` only for
    a run stopped early: how many seed-noise units behind its parent's curve it was when it was stopped.
    """

    stage: str
    metric: float | None
    baseline: float | None
    best_before: float | None
    goal: Goal
    noise_floor: float
    failure_class: str | None
    seconds: float
    timeout_s: float
    behind: float | None = None


def reward(x: RewardInput) -> float:
    """The scalar reward of one run (see the module docstring for the formula)."""
    return float(explain(x)["reward"])


def explain(x: RewardInput) -> dict[str, Any]:
    """The reward with its components, for the timeline and for debugging a policy's incentives."""
    behind = _finite(x.behind) if x.metric is None else None
    k = len(STAGES) - 1 if behind is not None else stage_index(x.stage)
    stage_credit = STAGE_WEIGHT * (k + 1) / len(STAGES)

    failure = _normalise_class(x.failure_class)
    invalid = failure in INVALIDATING_FAILURES
    reference = _finite(x.best_before)
    if reference is None:
        reference = _finite(x.baseline)
    metric = _finite(x.metric)
    scale = units = None
    improvement = 0.0
    if metric is not None and reference is not None and not invalid:
        base = _finite(x.baseline)
        magnitude = abs(base) if base is not None else abs(reference)
        noise = _finite(x.noise_floor)
        scale = max(noise if noise is not None and noise > 0 else 0.0, RELATIVE_FLOOR * magnitude, EPS)
        units = Goal(x.goal).gain(metric, reference) / scale
        if not math.isfinite(units):  # overflow on absurd values: keep the sign, saturate
            units = math.copysign(1e300, units) if not math.isnan(units) else 0.0
        beyond = math.copysign(max(abs(units) - 1.0, 0.0), units)
        squashed = math.tanh(beyond / TEMPERATURE)
        improvement = IMPROVEMENT_GAIN * squashed if squashed >= 0 else REGRESSION_LOSS * squashed
    if behind is not None:  # stopped early: the regression its curve showed
        units = -behind
        improvement = -REGRESSION_LOSS * math.tanh(max(behind - 1.0, 0.0) / TEMPERATURE)

    duration_penalty = 0.0
    seconds, timeout = _finite(x.seconds), _finite(x.timeout_s)
    if seconds is not None and timeout is not None and timeout > 0:
        duration_penalty = DURATION_WEIGHT * min(max(seconds / timeout, 0.0), 1.0)

    failure_penalty = 0.0 if failure is None else FAILURE_PENALTY.get(failure, DEFAULT_FAILURE_PENALTY)
    total = stage_credit + improvement - duration_penalty - failure_penalty
    return {
        "reward": total,
        # the inputs it was judged against, so a run can be scored again on the same terms (agent/rollout.py)
        "baseline": _finite(x.baseline),
        "best_before": _finite(x.best_before),
        "noise_floor": _finite(x.noise_floor),
        "stage": x.stage,
        "stage_index": k,
        "stage_credit": stage_credit,
        "reference": reference,
        "scale": scale,
        "units": units,
        "improvement": improvement,
        "behind": behind,
        "metric_ignored": invalid and metric is not None,
        "duration_penalty": duration_penalty,
        "failure_class": failure,
        "failure_penalty": failure_penalty,
    }


def _finite(v: float | None) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _normalise_class(name: str | None) -> str | None:
    if not name:
        return None
    return name.strip().lower().replace("-", "_").replace(" ", "_")
