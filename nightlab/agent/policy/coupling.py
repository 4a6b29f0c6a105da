"""Knobs that move together: what a change of one must carry along so the run stays the program it was.

A schedule's length that equals the training length (a cosine over the whole run, OneCycleLR's `total_steps`) moves
with it; a step count that was a multiple of an evaluation interval stays one; a model width split over
attention heads moves in multiples of the head count, which is never searched apart. Without these, moves that were
right crashed or quietly changed something else (nanoGPT's `n_embd % n_head`, a OneCycle schedule run past its end).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.searchable import EVAL_WORDS, is_numeric, leaf_call, leaf_name
from nightlab.agent.policy.state import ExperimentState, PolicyKnob

_SCHEDULE_WORDS = frozenset({"decay", "sched", "schedule", "scheduler", "anneal", "cosine", "lr", "max", "total"})
_EVERY_WORDS = frozenset({"interval", "every", "freq", "frequency", "period"})  # not `eval_iters`: a batch count
_HEADS = frozenset({"head", "heads", "nhead", "nheads"})
_MODEL_WIDTH = frozenset({"embd", "emb", "embed", "embedding", "model", "dmodel", "nembd", "hidden", "dim", "width"})
_NOT_MODEL_WIDTH = frozenset({"ff", "ffn", "feedforward", "mlp", "intermediate", "fc", "lin", "linear", "proj",
                              "head", "heads", "kv", "key", "value", "query"})

# the length arguments of a schedule that raises when stepped past its end (torch's OneCycleLR: "Tried to step N times.
# The specified number of total steps is M"): moved alone, a shorter one crashes the run
_FIXED_LENGTH_SCHEDULES = frozenset({"OneCycleLR"})
_SCHEDULE_LENGTH_ARGS = frozenset({"total_steps", "epochs", "steps_per_epoch"})


def linked_lengths(st: ExperimentState, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Schedule lengths that move with a training length: when `changes` sets a step / epoch count, another
    searchable knob of the same kind with the same value whose name says it is a schedule's length (nanoGPT's
    ``lr_decay_iters`` next to ``max_iters``, a ``T_max`` equal to the epochs) gets the same new value, so the
    schedule still spans the run instead of ending early and leaving the rest at its floor."""
    out: dict[str, Any] = {}
    for key, new in changes.items():
        k = st.knobs.get(key)
        if k is None or k.kind not in ("steps", "epochs") or not is_numeric(k.value):
            continue
        for other in st.knobs.values():
            if other.key in changes or other.key == key or other.kind != k.kind \
                    or not (other.searchable or other.follows) \
                    or not is_numeric(other.value) or float(other.value) != float(k.value):
                continue
            words = set(knobmod.name_words(other.key))
            if words & _SCHEDULE_WORDS and not set(knobmod.name_words(key)) & {"decay", "sched", "schedule"}:
                out[other.key] = new
    return out


def aligned_lengths(st: ExperimentState, changes: dict[str, Any]) -> dict[str, Any] | None:
    """`changes` with each new step count that was a multiple of an evaluation interval kept one (rounded to the
    nearest multiple, at least one interval); None when that leaves the count where it is.

    Code that evaluates every N steps (nanoGPT's ``eval_interval``) prints its metric at multiples of N: a step count
    between two of them ends training after the last evaluation, so the metric read is stale (nanoGPT with
    ``max_iters`` 150 and ``eval_interval`` 300 reports its step-0 loss)."""
    out = dict(changes)
    for key, new in changes.items():
        k = st.knobs.get(key)
        if k is None or k.kind != "steps" or not is_numeric(new) or not is_numeric(k.value) or k.value <= 0:
            continue
        for other in st.knobs.values():
            if not other.effective or other.kind != "logging" or not is_numeric(other.value) or other.value < 2:
                continue
            words = set(knobmod.name_words(other.key))
            if not words & EVAL_WORDS or not words & _EVERY_WORDS:
                continue
            every = int(other.value)
            if int(k.value) % every:
                continue  # not a multiple now: nothing to keep
            aligned = max(every, round(float(new) / every) * every)
            if aligned == k.value:
                return None
            out[key] = aligned
    return out


def couple_heads(knobs: Mapping[str, PolicyKnob]) -> None:
    """Attention splits the model width over its heads (nanoGPT asserts `n_embd % n_head == 0`; so do
    `nn.MultiheadAttention` and HF's configs): searched apart, one draw in three of nanoGPT's `n_head` in [1, 8]
    beside `n_embd` crashed the run. Where a head count sits beside a model width, the head count is not searched and
    the width moves in multiples of it."""
    heads = [k for k in knobs.values()
             if isinstance(k.value, int) and not isinstance(k.value, bool) and k.value >= 1
             and set(knobmod.name_words(leaf_name(k.key))) & _HEADS
             and not set(knobmod.name_words(leaf_name(k.key))) & {"dim", "dims", "size", "sizes"}]
    widths = [k for k in knobs.values() if k.kind == "width" and k.space is not None
              and set(knobmod.name_words(leaf_name(k.key))) & _MODEL_WIDTH
              and not set(knobmod.name_words(leaf_name(k.key))) & _NOT_MODEL_WIDTH]
    if not heads or not widths:
        return
    multiple = math.lcm(*(int(k.value) for k in ([k for k in heads if k.effective] or heads)))
    for k in widths:
        assert k.space is not None
        k.space = dataclasses.replace(k.space, multiple=multiple)
    for k in heads:
        if k.searchable:
            k.searchable = False
            k.why_not = (f"the model width ({', '.join(w.key for w in widths)}) is split over the heads: it moves in "
                         f"multiples of {multiple} instead")


def one_cycle_lengths(knobs: Mapping[str, PolicyKnob]) -> None:
    """OneCycleLR's `total_steps` / `epochs` are not searched on their own: they follow the training length they
    equal (`linked_lengths`); its `steps_per_epoch` is the loader's length and never moves."""
    for k in knobs.values():
        callee, dot, leaf = leaf_call(k.key)
        if not dot or callee not in _FIXED_LENGTH_SCHEDULES or leaf not in _SCHEDULE_LENGTH_ARGS or not k.searchable:
            continue
        k.searchable = False
        k.follows = leaf != "steps_per_epoch"
        k.why_not = (f"{callee} raises when stepped past its length: it moves with the training length it equals"
                     if k.follows else f"{callee}'s steps per epoch is the data loader's length")
