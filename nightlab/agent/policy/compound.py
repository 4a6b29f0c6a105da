"""Moves that need each other: more capacity together with the training length it needs, and a rescaling of the
inputs together with the learning rate it needs.

A wider (or deeper) model fits more, but it needs more steps to get there: with the training length of the narrow
model its curve is still falling when training stops, and the widening alone gains little or nothing over the noise,
while training longer alone gains little too, since the small model is at its capacity. Changing one thing at a
time, the policy discards both. Two rules read the curves to see it:

- retry: a capacity change of the best (one knob, width or depth, raised) that scored within the noise of the best
  (neither clearly better nor clearly worse) is tried again with a longer training, before it is abandoned — 4x
  (or 3x, 2x: the longest the timeout allows: one decisive run rather than several half-way ones), unless its own
  curve over-fitted (then more steps are the wrong remedy). A larger model often sits on a plateau longer before
  its loss starts to fall, so a flat curve is no reason to stop short;
  neither rule applies to a run whose training loss already fell by 90% or more of its start (`fits_already`): that
  model fits its training data, and a loss still falling from 0.06 to 0.01 is no promise for the held-out metric
  (measured: on the search benchmark's mnist1d a widened best trained twice as long gained nothing);
- follow: a best reached by adding capacity whose curve is still falling at the end gets the longer training first,
  before any further capacity.

A third rule is about scale. Standardising the inputs changes the scale of the gradients: plain SGD's learning rate
was tuned for the raw inputs, and where their scale was large it is then far too small (measured on the
breast-cancer task: standardised at SGD's lr 0.001 the cross-validated log-loss went 0.30 -> 0.47; at lr 0.01 it
went to 0.11, at 0.03 to 0.07). So a rescaling transform tried from the best's lineage and not kept is tried once
more (`lost_rescalings`): while the training is still plain SGD, with the learning rate unit-scale inputs want
(`SGD_UNIT_STEP`, an effective step: 0.03 without momentum, 0.003 with 0.9) where the tuned one was smaller — the
raw inputs' scale cannot be read from the code, but standardised inputs have unit scale whatever it was; or as it
was, once the optimizer became AdamW since (an adaptive optimizer's steps do not follow the gradients' scale).

The training length is the first epochs knob (or steps knob) the policy may change; each plan is checked against
the timeout by the caller (`afford`). This module decides from the experiments and curves alone; turning a plan into
edits is the builtin policy's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nightlab.agent import diagnose
from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_change, fmt_noise
from nightlab.agent.proposal import ExperimentView
from nightlab.agent.states import Kind, RunResult

CAPACITY_KINDS = frozenset({"width", "depth"})
LENGTH_KINDS = ("epochs", "steps")
RETRY_FACTORS = (4.0, 3.0, 2.0)  # a retried capacity change: the longest of these that fits the timeout
PLAIN_FACTORS = (2.0,)  # a best whose added capacity is still learning: twice the length, or nothing
_FALLING = frozenset({"still_improving", "underfitting"})
_WRONG_WAY = frozenset({"overfitting", "diverging", "nan"})  # curves that more steps would not help
RESCALING = ("standardize",)  # transforms that change the scale of the inputs a learning rate was tuned for
SGD_UNIT_STEP = 0.03  # plain SGD's effective step (lr / (1 - momentum)) for unit-scale inputs: a rescaling's retry


@dataclass(frozen=True)
class Length:
    """A training-length knob the policy may change: its key, kind and current value."""

    key: str
    kind: str
    value: float


@dataclass(frozen=True)
class Plan:
    """A compound move: knob changes, with its title and the reasons read from the runs."""

    title: str
    rationale: str
    changes: dict[str, Any]
    expected: str
    pathology: str = ""


def _pathologies(e: ExperimentView, goal: str, timeout_s: float | None) -> list[diagnose.Pathology]:
    try:
        return diagnose.curve_pathologies(list(e.loss_curve), list(e.curve) or None, goal=goal, seconds=e.seconds,
                                          timeout_s=timeout_s)
    except Exception:
        return []


FITS = 0.9  # a training loss this far below its start (90%): the model fits its training data already


def fits_already(e: ExperimentView) -> bool:
    """Whether the run's training loss fell by FITS of its start or more: it fits its training data, and more steps
    would sharpen that fit rather than what is measured (a loss still falling from 0.06 to 0.01 says nothing about
    the held-out metric)."""
    vals = [v for _s, v in e.loss_curve if math.isfinite(v)]
    if len(vals) < 4:
        return False
    start, end = sorted(vals[:3])[1], sorted(vals[-3:])[1]
    return start > 0 and (start - end) / start >= FITS


def still_falling(e: ExperimentView, goal: str, timeout_s: float | None) -> str:
    """The evidence that the run's training loss was still falling when it stopped ('' when it was not, or the
    curve cannot say)."""
    found = _pathologies(e, goal, timeout_s)
    if {str(p.kind) for p in found} & _WRONG_WAY:
        return ""
    return next((str(p.evidence) for p in found if str(p.kind) in _FALLING), "")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _longer(length: Length, factors: Sequence[float], scale: Callable[[str, float], Any | None],
            afford: Callable[[dict[str, Any]], bool], base: Mapping[str, Any]) -> tuple[float, Any] | None:
    """(factor, new length) for the longest of `factors` that the timeout allows together with `base`."""
    for f in factors:
        new = scale(length.key, f)
        if new is None or new == length.value:
            continue
        if afford({**base, length.key: new}):
            return f, new
    return None


def retries(best: ExperimentView, children: Sequence[tuple[ExperimentView, str, Any, Any, str]],
            lengths: Sequence[Length], *, goal: str, noise_floor: float, timeout_s: float | None,
            scale: Callable[[str, float], Any | None], afford: Callable[[dict[str, Any]], bool]) -> Iterator[Plan]:
    """Capacity changes of `best` that scored within the noise, each with the longer training it needs.

    `children`: (experiment, knob, old value, new value, knob kind) for each succeeded one-knob child of `best`
    at its seed, newest first. `scale(key, factor)` is a length knob's new value; `afford(changes)` whether a
    change fits the timeout."""
    if best.metric is None or not lengths:
        return
    g = Goal(goal)
    floor = max(0.0, noise_floor)
    length = lengths[0]
    for e, key, old, new, kind in children:
        if kind not in CAPACITY_KINDS or e.metric is None or not math.isfinite(e.metric):
            continue
        if not (isinstance(old, int | float) and isinstance(new, int | float) and new > old):
            continue
        gain = g.gain(float(e.metric), float(best.metric))
        if gain < -floor or (floor > 0 and gain > floor):
            continue  # clearly worse (abandoned), or clearly better (it is the best, or will be confirmed)
        found = _pathologies(e, goal, timeout_s)
        if {str(p.kind) for p in found} & _WRONG_WAY or fits_already(e):
            continue
        got = _longer(length, RETRY_FACTORS, scale, afford, {key: new})
        if got is None:
            continue
        f, longer = got
        falling = next((str(p.evidence) for p in found if str(p.kind) in _FALLING), "")
        flat = next((str(p.evidence) for p in found if str(p.kind) == "plateau"), "")
        curve = (f"its training loss was still falling when it stopped ({falling})" if falling else
                 f"its training loss had barely started to fall ({flat}): a larger model often sits on a plateau "
                 "longer before it learns" if flat else "a larger model usually needs more steps to reach what it "
                 "can fit")
        why = (f"#{e.id} changed only {key} ({_fmt(old)} → {_fmt(new)}) and scored {fmt_change(gain)} against "
               f"#{best.id} at the same seed, within the noise floor ({fmt_noise(floor)}); {curve}. More capacity "
               f"pays off only with the training to use it, so before the change is abandoned it is tried again "
               f"with {f:g}x the training length ({length.key} {_fmt(length.value)} → {_fmt(longer)}).")
        yield Plan(title=f"{key} {_fmt(old)} → {_fmt(new)} with {length.key} {_fmt(length.value)} → {_fmt(longer)} "
                         f"(#{e.id} again, trained longer)",
                   rationale=why, changes={key: new, length.key: longer},
                   expected=f"better than #{best.id} by more than the noise", pathology="still_improving")


def follow(best: ExperimentView, added: Sequence[tuple[str, Any, Any]], lengths: Sequence[Length], *, goal: str,
           timeout_s: float | None, scale: Callable[[str, float], Any | None],
           afford: Callable[[dict[str, Any]], bool]) -> Iterator[Plan]:
    """The longer training a best that was reached by adding capacity (`added`: (knob, old, new) raised from its
    parent) needs when its curve is still falling at the end."""
    if not added or not lengths:
        return
    falling = still_falling(best, goal, timeout_s)
    if not falling or fits_already(best):
        return
    length = lengths[0]
    got = _longer(length, PLAIN_FACTORS, scale, afford, {})
    if got is None:
        return
    f, longer = got
    what = ", ".join(f"{k} {_fmt(a)} → {_fmt(b)}" for k, a, b in added)
    why = (f"#{best.id} added capacity ({what}) and its training loss was still falling when it stopped "
           f"({falling}): the larger model has not yet fit what it can. Training {f:g}x longer comes before any "
           "further capacity.")
    yield Plan(title=f"train #{best.id} longer: {length.key} {_fmt(length.value)} → {_fmt(longer)} "
                     "(the added capacity is still learning)",
               rationale=why, changes={length.key: longer}, expected="lower training loss and a better metric",
               pathology="still_improving")


def lost_rescalings(lineage: Sequence[ExperimentView],
                    experiments: Sequence[ExperimentView]) -> Iterator[tuple[str, ExperimentView]]:
    """(transform, its run) for each rescaling transform tried exactly once from the best's lineage (`lineage`: the
    best first, then its ancestors), whose run succeeded and was not kept: it may have lost only for the learning
    rate it ran with. Tried twice, it is abandoned."""
    ids = {e.id for e in lineage}
    for name in RESCALING:
        tries = [e for e in experiments
                 if e.kind == Kind.TRANSFORM and e.knobs.get("transform") == name and e.parent_id in ids]
        if len(tries) == 1 and tries[0].id not in ids and tries[0].run_result == RunResult.SUCCEEDED:
            yield name, tries[0]


def adaptive_since(lineage: Sequence[ExperimentView], lost: ExperimentView) -> ExperimentView | None:
    """The experiment of the best's lineage that switched the optimizer from SGD to AdamW after `lost` was tried from
    its parent (None: the lineage made no such switch since)."""
    ids = [e.id for e in lineage]
    if lost.parent_id not in ids:
        return None
    since = lineage[:ids.index(lost.parent_id)]  # the best first: what came after the parent
    return next((e for e in since if e.knobs.get("transform") == "sgd_to_adamw"), None)


__all__ = ["CAPACITY_KINDS", "FITS", "LENGTH_KINDS", "RESCALING", "SGD_UNIT_STEP", "Length", "Plan", "adaptive_since",
           "fits_already", "follow", "lost_rescalings", "retries", "still_falling"]
