"""Search spaces: the range a model-based search (TPE, the builtin's knob moves) may give a knob, always holding
its current value; none where no search makes sense (seeds, logging cadence, data shapes, an unknown zero)."""

from __future__ import annotations

import math
import re

from nightlab.agent.policy.knobs.kinds import (
    _CLIP,
    _MOMENTUM,
    _NORM_WORDS,
    _POLICY_CLIP,
    _SHARE_PART,
    _SHARE_WHOLE,
    _STEPS,
    _real_valued,
    _tokens,
    tree_split,
)
from nightlab.agent.policy.knobs.knob import UNTUNABLE_KINDS, Knob, Space


def _is_pow2(v: float) -> bool:
    return v >= 1 and float(v).is_integer() and (int(v) & (int(v) - 1)) == 0


def search_space(knob: Knob) -> Space | None:
    """A sensible range for model-based search over `knob`, always containing its current value; None where no
    search makes sense (seeds, logging cadence, data shapes, a choice without alternatives, an unknown zero)."""
    v = knob.value
    kind = knob.kind
    if kind in UNTUNABLE_KINDS:
        return None
    if isinstance(v, str) or kind == "choice":
        choices = list(knob.choices) if knob.choices else []
        return Space(0.0, 0.0, False, False, choices) if len(choices) > 1 else None
    if isinstance(v, bool) or kind == "flag":
        return Space(0.0, 1.0, False, False, [False, True])
    if knob.choices and len(knob.choices) > 1:
        return Space(0.0, 0.0, False, False, list(knob.choices))
    x = float(v)
    is_int = isinstance(v, int) and not _real_valued(knob)
    if x == 0 and not is_int and kind == "other" and set(_tokens(_leaf_name_of(knob.name))) & _OFF_REGULARISERS:
        return Space(0.01, 0.3, True, False, allow_zero=True)  # off: switched on at a typical 0.05
    if x == 0 and not is_int and kind == "other" and \
            _leaf_name_of(knob.name).lstrip("-").replace("-", "_").lower() in _OFF_PENALTIES:
        return Space(1e-3, 10.0, True, False, allow_zero=True)  # a boosting penalty off by default: on at 1e-3..10
    if kind == "lr":
        if x <= 0:  # a schedule's floor at zero (`eta_min=0`, `min_lr: 0`): no rate is trained at it, nothing to raise
            return None
        return Space(min(max(x / 30, 1e-5), x), max(min(x * 30, 1.0), x), True, False)
    if kind == "batch_size":
        return Space(min(8.0, x) if x >= 1 else 8.0, max(512.0, x), True, True, pow2=True)
    if kind in ("width", "seq_len"):
        if x < 1:
            return None
        return Space(max(1.0, math.floor(x / 4)), x * 4, True, True, pow2=_is_pow2(x))
    if kind == "depth":
        if x < 1:
            return None
        return Space(1.0, float(max(4, int(x) + 2)), False, True)
    if kind in ("epochs", "steps"):
        if x < 1:
            return None
        return Space(max(1.0, math.floor(x / 2)), x * 4, True, True)
    if kind == "dropout":
        return Space(0.0, max(0.5, x), False, False) if x >= 0 else None
    if kind == "weight_decay":
        if x < 0:
            return None
        return Space(min(1e-6, x) if x > 0 else 1e-6, max(0.3, x), True, False, allow_zero=True)
    if kind == "momentum":
        if not 0 <= x < 1:
            return None
        if x >= 0.5:  # an average already on (SGD's 0.9, Adam's 0.99): moved by its horizon 1/(1 − x)
            return Space(0.0, max(0.999, x), False, False, log1m=True)
        if 0 < x < 0.05:  # no average this small: a diffusion schedule's `beta_start` 1e-4, a KL weight `beta`
            return Space(x / 10, min(x * 10, 0.5), True, False)  # (a step of 0.2 on the plain scale wrecked it)
        return Space(0.0, max(0.99, x), False, False)  # off or weak: switching it on is a step on the plain scale
    if kind == "warmup":
        if x < 0:
            return None
        words = set(_tokens(_leaf_name_of(knob.name)))
        if words & {"epoch", "epochs"}:  # a count of epochs, whole or not (`warmup_epochs = 0.5`): not a fraction
            return Space(0.0, max(4 * x, 10.0), False, is_int, allow_zero=True)
        if is_int or words & _STEPS:  # a count of steps
            return Space(0.0, float(max(4 * x, 100)), False, is_int, allow_zero=True)
        return Space(0.0, max(0.3, x), False, False, allow_zero=True) if x <= 1 else None  # a fraction of training
    if kind == "clip":
        if x <= 0:
            return Space(0.1, 10.0, True, False, allow_zero=True)
        return Space(x / 10, x * 10, True, False, allow_zero=True)
    if is_int:
        if x < 1:
            return None
        # a tree node needs two samples to split at all: scikit-learn refuses `min_samples_split=1`
        floor = 2 if tree_split(_leaf_name_of(knob.name)) and x >= 2 else 1
        return Space(float(max(floor, int(x) // 4)), x * 4, True, True)
    if x <= 0:
        return None
    bounded = _bounded_space(knob.name, x)
    if bounded is not None:
        return bounded
    return Space(x / 10, x * 10, True, False)


# regularisers that are off at 0 and on at a small real (label smoothing 0.1, mixup's α 0.2, random erasing's
# probability 0.25 in torchvision's references `--random-erase`): a zero has a space
_ERASING = frozenset({"erase", "erasing", "cutout"})  # a probability: bounded by 1 when on (`_bounded_space`)
_OFF_REGULARISERS = frozenset({"smoothing", "mixup", "cutmix"}) | _ERASING
# gradient boosting's penalties, off at their default 0 (LightGBM's `reg_alpha` / `reg_lambda` / `lambda_l1`,
# XGBoost's `reg_alpha` and `gamma` under its own name `min_split_loss`): Optuna's LightGBM tuner searches them on a
# log scale to 10; `lambda_l2` / `l2_leaf_reg` are weight decays (`classify`)
_OFF_PENALTIES = frozenset({"reg_alpha", "reg_lambda", "lambda_l1", "l1_reg", "l1_regularization", "min_split_loss",
                            "min_gain_to_split"})
# A factor in [0.5, 1) named as a decay or a discount (an exponential learning-rate decay of 0.95 per epoch, a
# reinforcement-learning discount γ of 0.99, ReduceLROnPlateau's `factor`) is an average's coefficient, as a
# momentum is: what it sets is the horizon 1/(1 − x). It is searched on log(1 − x) between 0.5 and 1; ×10 around
# it, a discount of 0.99 was stepped to 2.97, a return that grows without bound, and a decay of 0.95 to 2.85, a
# learning rate that explodes.
_DECAY_FACTOR = frozenset({"decay", "discount", "gamma", "factor"})


def _bounded_space(name: str, x: float) -> Space | None:
    """The space of an unclassified real knob whose name bounds it (a share of 1, a decay factor below 1), or None
    for the generic ×10 around its value."""
    words = set(_tokens(_leaf_name_of(name)))
    if words & _CLIP and words & _POLICY_CLIP and 0 < x < 1:  # PPO's ratio clip: 0.1-0.3 works, 1 or more is no clip
        return Space(max(0.01, x / 4), max(0.5, x), False, False)
    if words & _MOMENTUM and words & _NORM_WORDS and 0 < x < 1:
        if x >= 0.5:  # Keras' convention (0.99): the average's horizon
            return Space(0.5, max(0.999, x), False, False, log1m=True)
        return Space(x / 10, 0.5, True, False)  # torch's (0.1): 0 would freeze the running statistics
    if words & {"gae", "lam"} and 0 < x <= 1:  # GAE's λ: 0.9-1 works; above 1 the advantages grow without bound
        return Space(min(0.8, x), 1.0, False, False)
    if words & {"eps", "epsilon", "exploration"} and words & {"start", "end", "final", "initial", "init", "min",
                                                               "max"} and 0 < x <= 1:  # an ε-greedy rate: a probability
        return Space(x / 10, 1.0, True, False) if x < 0.1 else Space(x / 4, 1.0, False, False)
    # bagging's share, a probability (random erasing's)
    if 0 < x <= 1 and (words & (_SHARE_WHOLE | _SHARE_PART | _ERASING) or {"max", "samples"} <= words):
        high = 1.0 if words & _SHARE_WHOLE or "samples" in words else max(0.95, x)
        return Space(x / 4, high, False, False)
    if 0 < x < 1 and words & _DECAY_FACTOR:
        if x >= 0.5:
            return Space(0.5, max(0.999, x), False, False, log1m=True)  # a factor near 0 stops the decayed thing
        # a step decay's factor (StepLR's gamma 0.1, ReduceLROnPlateau's factor, which refuses 1 or more): ×10
        # around it, below 1
        return Space(x / 10, min(x * 10, 0.9), True, False)
    return None


def _leaf_name_of(name: str) -> str:
    """The last part of a knob's dotted name (``GradientBoostingClassifier.subsample`` → ``subsample``), without a
    file prefix or a duplicate's ``#2``."""
    return re.split(r"[.:]", name.split("#")[0])[-1]
