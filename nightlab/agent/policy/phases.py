"""The phases of a session's plan, and which of the builtin policy's moves belongs to which.

A plan (agent/plan.py) orders the work of a session as an ML engineer would: make it run, then the optimizer and
learning rate, capacity, regularisation, the training length. The builtin policy's moves are knob changes (each knob
has a kind, knobs/), code transformations (transforms/, depth.py) and repairs of a failed run; `MOVE_PHASES` maps
each of them to its phase, in one table, so the plan offers only phases the policy can actually work in and follows
them by filtering the same stream of moves it would propose from anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from nightlab.agent.states import Kind


class Phase(StrEnum):
    MAKE_IT_RUN = "make_it_run"
    OPTIMIZER = "optimizer"
    CAPACITY = "capacity"
    REGULARISATION = "regularisation"
    LONGER_TRAINING = "longer_training"
    OTHER = "other"


TITLES: dict[Phase, str] = {
    Phase.MAKE_IT_RUN: "make it run",
    Phase.OPTIMIZER: "optimizer and learning rate",
    Phase.CAPACITY: "capacity",
    Phase.REGULARISATION: "regularisation",
    Phase.LONGER_TRAINING: "longer training",
    Phase.OTHER: "other settings",
}

# where a move of the builtin policy belongs: ("knob", knob kind), ("transform", name) or ("fix", "*")
MOVE_PHASES: dict[tuple[str, str], Phase] = {
    ("fix", "*"): Phase.MAKE_IT_RUN,
    # knob kinds (knobs/kinds.py)
    ("knob", "lr"): Phase.OPTIMIZER,
    ("knob", "momentum"): Phase.OPTIMIZER,
    ("knob", "batch_size"): Phase.OPTIMIZER,
    ("knob", "warmup"): Phase.OPTIMIZER,
    ("knob", "clip"): Phase.OPTIMIZER,
    ("knob", "width"): Phase.CAPACITY,
    ("knob", "depth"): Phase.CAPACITY,
    ("knob", "weight_decay"): Phase.REGULARISATION,
    ("knob", "dropout"): Phase.REGULARISATION,
    ("knob", "epochs"): Phase.LONGER_TRAINING,
    ("knob", "steps"): Phase.LONGER_TRAINING,
    ("knob", "seq_len"): Phase.OTHER,
    ("knob", "choice"): Phase.OTHER,
    ("knob", "other"): Phase.OTHER,
    # code transformations (transforms.TRANSFORMS)
    ("transform", "sgd_to_adamw"): Phase.OPTIMIZER,
    ("transform", "warmup_cosine"): Phase.OPTIMIZER,
    ("transform", "grad_clip"): Phase.OPTIMIZER,
    ("transform", "standardize"): Phase.OPTIMIZER,  # conditioning of the problem: it speeds optimisation up
    ("transform", "deepen"): Phase.CAPACITY,
    ("transform", "dropout"): Phase.REGULARISATION,
    ("transform", "weight_decay"): Phase.REGULARISATION,
    ("transform", "label_smoothing"): Phase.REGULARISATION,
}

# a move that changes knobs of several phases (a combination, capacity with the training it needs: compound.py)
# belongs to the first of these that it touches: the training length follows a capacity change, not the reverse
PRECEDENCE = (Phase.MAKE_IT_RUN, Phase.CAPACITY, Phase.REGULARISATION, Phase.OPTIMIZER, Phase.LONGER_TRAINING,
              Phase.OTHER)

# which phase comes first for a diagnosis of the baseline's learning curve (diagnose.curve_pathologies' kinds)
FIRST_FOR: dict[str, Phase] = {
    "nan": Phase.OPTIMIZER,
    "diverging": Phase.OPTIMIZER,
    "plateau": Phase.OPTIMIZER,
    "noisy": Phase.OPTIMIZER,
    "overfitting": Phase.REGULARISATION,
    "underfitting": Phase.CAPACITY,
    "still_improving": Phase.LONGER_TRAINING,
}
# the order without a diagnosis (the builtin's own: optimisation first, then capacity, then the rest)
DEFAULT_ORDER = (Phase.MAKE_IT_RUN, Phase.OPTIMIZER, Phase.CAPACITY, Phase.REGULARISATION, Phase.LONGER_TRAINING,
                 Phase.OTHER)


def phase_of(kind: str, knob_kinds: Iterable[str], transform: str | None) -> Phase:
    """The phase of one move: a repair, a transformation, or knob changes (kinds of the knobs it changes)."""
    if kind == Kind.FIX:
        return Phase.MAKE_IT_RUN
    if transform:
        return MOVE_PHASES.get(("transform", transform), Phase.OTHER)
    found = {MOVE_PHASES.get(("knob", k), Phase.OTHER) for k in knob_kinds}
    return next((p for p in PRECEDENCE if p in found), Phase.OTHER)


def order_for(diagnoses: Iterable[str]) -> list[Phase]:
    """The phases in the order a diagnosis asks for: its remedy's phase first (the most urgent diagnosis first;
    a failed run's repair before anything)."""
    order = list(DEFAULT_ORDER)
    first = next((FIRST_FOR[d] for d in diagnoses if d in FIRST_FOR), None)
    if first is not None:
        order.remove(first)
        order.insert(1, first)  # after "make it run"
    return order
