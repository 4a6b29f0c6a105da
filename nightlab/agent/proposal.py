"""The language of proposals: what a policy is shown and what it answers.

A policy reads a `PolicyContext` (the project, the experiment tree as `ExperimentView`s, the brief) and answers with a
`Proposal`: a hypothesis and the `Edit`s (exact search/replace blocks against the parent experiment's files) that test
it. The engine, memory, the edit validator and every policy speak this language, so it sits below all of them and
imports none of them (agent/policy/base.py, the policy interface, re-exports it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nightlab.agent.goal import Goal
from nightlab.agent.states import Kind, Pricing, RunResult, Status


@dataclass(frozen=True)
class Edit:
    """Replace the single occurrence of `search` in `path` (relative to the repo root) with `replace`.

    An empty `search` with a path that does not exist yet creates the file with `replace` as its content.
    """

    path: str
    search: str
    replace: str


@dataclass
class Proposal:
    """One hypothesis and the change that tests it."""

    title: str  # one line, used as the commit message subject
    rationale: str  # why this should help; shown to the user and stored
    expected_effect: str = ""  # e.g. "val_bpc -0.1"
    edits: list[Edit] = field(default_factory=list)
    parent_id: int | None = None  # experiment to build on; None = the current best (or the baseline)
    kind: Kind = Kind.HYPERPARAMETER
    knobs: dict[str, Any] = field(default_factory=dict)  # knob name -> new value, for search bookkeeping
    seed: int | None = None  # run with this seed instead of the default
    diagnosis: str = ""  # for fixes: what went wrong
    # the whole training command this experiment runs, when it changes a setting on the command line (None: the
    # parent's command); stored with the experiment, shown in its diff, carried by promote into nightlab.toml
    command: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)  # model calls: model, tokens, cost
    predicted_s: float | None = None  # the run's duration as the policy predicts it (None: it does not say)
    priced: Pricing | None = None  # how `predicted_s` was made (PARENT: it could not be, the parent's time stands)
    phase: str = ""  # the plan's phase this move belongs to (policy/phases.py; "": the policy does not say)


@dataclass(frozen=True)
class ExperimentView:
    """What a policy may know about one experiment (never the raw log beyond `log_tail`)."""

    id: int
    parent_id: int | None
    title: str
    kind: Kind
    status: Status  # where it is in its lifecycle
    run_result: RunResult | None  # how its run ended, None before it ran
    metric: float | None
    curve: Sequence[tuple[int, float]]  # (step, value) of the metric, or of a loss when the metric has none
    loss_curve: Sequence[tuple[int, float]]
    knobs: dict[str, Any]
    failure_class: str | None
    diagnosis: str | None
    log_tail: str
    seed: int
    seconds: float | None
    stage: str | None = None
    command: str = ""  # the training command it runs ("" = the project's command)
    fixed_s: float | None = None  # of `seconds`, those that do not grow with the training length (None: not timed)


@dataclass
class PolicyContext:
    """Everything a policy may read. `read_file(exp_id, path)` returns a file as of that experiment's commit."""

    root: str
    metric: str
    goal: Goal
    editable: Sequence[str]  # repo-relative paths the policy may edit
    protected: Sequence[str]  # repo-relative paths it must never touch
    experiments: Sequence[ExperimentView]
    best_id: int | None
    baseline_id: int | None
    noise_floor: float
    brief: str
    timeout_s: float
    runs_left: int
    read_file: Callable[[int | None, str], str]
    rng: random.Random
    debug_depth: int = 3
    command: str = ""  # the project's training command (an experiment's own is in its view)
    tracked: Sequence[str] = ()  # every path the repository tracks (the files it ships), editable or not
    gpus_per_job: int = 0  # GPUs each job is given (slots.gpus_per_job); 0 = CPU jobs
    # proposals a person rejected (not the engine's refusals): experiment id -> their feedback ("" when none)
    rejected_by_user: Mapping[int, str] = field(default_factory=dict)

    # how a path is or passes through a symbolic link at an experiment's commit (None: it does not); such paths are
    # never edited, and `editable` lists none of them
    link_in_path: Callable[[int | None, str], str | None] | None = None
    # an approved plan's current phase (policy/phases.py): propose only moves of it; () = any move
    phases: tuple[str, ...] = ()
    # the seconds a run started now may take before the session's deadline or compute budget stops it (its own run
    # time, what runs take beyond it here already taken off: time_budget.py); None = no deadline and no budget. A
    # policy that weighs it proposes runs predicted to fit, and lists those it skipped in `unfit`
    time_left_s: float | None = None


__all__ = ["Edit", "ExperimentView", "PolicyContext", "Proposal"]
