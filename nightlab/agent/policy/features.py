"""Features of a decision step: the state as the policy saw it, and each candidate move, as named numbers.

What the learned policy scores and what the experience store keeps (also the user-level store, which gathers many
projects): only numbers and words from nightlab's own fixed vocabularies (knob kinds, transform names, pathology
kinds, move sources) — never a file name, a knob's own name, a path, code or a value from the user's files. So a
feature dict can leave the project without taking anything of it along.

Everything here is computed from the `PolicyContext` of the step, i.e. from what was known when the decision was
made: experiments still running count as running, their results do not exist yet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nightlab.agent.goal import Goal
from nightlab.agent.proposal import ExperimentView, PolicyContext
from nightlab.agent.states import ACTIVE, ENGINE_KINDS, WINNERS, RunResult, Status

# the fixed vocabularies: a feature names only these (anything else maps to "other")
SOURCES = ("combine", "compound", "diagnosis", "transform", "widen", "search", "fix", "llm", "pattern")
KNOB_KINDS = ("lr", "epochs", "steps", "batch_size", "width", "depth", "weight_decay", "dropout", "warmup",
              "momentum", "clip", "seq_len", "choice")
TRANSFORMS = ("sgd_to_adamw", "warmup_cosine", "standardize", "grad_clip", "weight_decay", "dropout",
              "label_smoothing", "deepen")
PATHOLOGIES = ("nan", "diverging", "overfitting", "too_slow", "underfitting", "still_improving", "plateau", "noisy")
WON = WINNERS
# experiments whose run ended with a result (their verdict given or still to come)
RAN = WINNERS | {Status.DISCARDED, Status.FAILED, Status.TIMED_OUT, Status.LOST, Status.SUCCEEDED,
                  Status.STOPPED_EARLY}


@dataclass(frozen=True)
class MoveInfo:
    """What a candidate move is, in the fixed vocabularies (no names from the user's code).

    `kind` is the knob kind of its main change ("" for none), `factor` new/old of that knob (0 when not a scaling),
    `rank` its place in the builtin policy's own order (0 = what the builtin would try first).
    """

    source: str
    kind: str = ""
    transform: str = ""
    pathology: str = ""
    factor: float = 0.0
    n_changes: int = 0
    rank: int = 0
    tried: int = 0  # earlier experiments in this project that moved the same knob (or applied the same transform)
    wins: int = 0  # of those, how many became the best
    fails: int = 0  # of those, how many failed to run


def _vocab(word: str, vocab: Sequence[str]) -> str:
    return word if word in vocab else "other"


def state_features(ctx: PolicyContext, extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """The project, the curve of the current best and the history, as the policy saw them at this step."""
    exps = list(ctx.experiments)
    by_id = {e.id: e for e in exps}
    ran = [e for e in exps if e.status in RAN and e.kind not in ENGINE_KINDS]
    failed = [e for e in ran if e.run_result not in (None, RunResult.SUCCEEDED)]
    running = [e for e in exps if e.status in ACTIVE]
    started = sum(1 for e in exps if e.status in RAN or e.status == Status.RUNNING)
    f: dict[str, float] = {
        "s.bias": 1.0,
        "s.maximize": 1.0 if ctx.goal == Goal.MAXIMIZE else 0.0,
        "s.n_ran": math.log1p(len(ran)),
        "s.fail_frac": len(failed) / len(ran) if ran else 0.0,
        "s.pending": math.log1p(len(running)),
        "s.runs_left": math.log1p(max(0, ctx.runs_left)),
        "s.budget_frac": started / max(1, started + ctx.runs_left),
        "s.has_best": 1.0 if ctx.best_id is not None else 0.0,
    }
    best = by_id.get(ctx.best_id) if ctx.best_id is not None else None
    if best is not None:
        if best.seconds and ctx.timeout_s:
            f["s.best_time_frac"] = min(1.0, float(best.seconds) / float(ctx.timeout_s))
        f["s.best_depth"] = math.log1p(_depth(by_id, best))
        f["s.learned_frac"] = _learned_fraction(best)
        for kind in _pathologies(ctx, best):
            f[f"s.path.{_vocab(kind, PATHOLOGIES)}"] = 1.0
        won = _won_by(ctx, by_id, best)
        if won is not None:
            f["s.best_won_by"] = math.log1p(won)
    # steps since the last improvement (the policy's own experiments, in order)
    since = 0
    for e in sorted(ran, key=lambda x: x.id):
        since = 0 if e.status in WON else since + 1
    f["s.since_win"] = math.log1p(since)
    for k, v in (extra or {}).items():
        f[f"s.{k}"] = float(v)
    return f


def move_features(m: MoveInfo, n_candidates: int) -> dict[str, float]:
    """One candidate's own features, and how moves of the same knob (or transform) fared earlier in the project."""
    f: dict[str, float] = {f"m.src.{_vocab(m.source, SOURCES)}": 1.0}
    if m.kind:
        f[f"m.kind.{_vocab(m.kind, KNOB_KINDS)}"] = 1.0
    if m.transform:
        f[f"m.tf.{_vocab(m.transform, TRANSFORMS)}"] = 1.0
    if m.pathology:
        f[f"m.diag.{_vocab(m.pathology, PATHOLOGIES)}"] = 1.0
    if m.factor > 0:
        lf = max(-3.0, min(3.0, math.log(m.factor)))
        f["m.log_factor"] = lf
        f["m.up" if lf > 0 else "m.down"] = 1.0
    f["m.n_changes"] = float(m.n_changes)
    f["m.rank"] = m.rank / max(1, n_candidates - 1) if n_candidates > 1 else 0.0
    f["m.first"] = 1.0 if m.rank == 0 else 0.0
    if m.tried:
        f["m.tried"] = math.log1p(m.tried)
        f["m.win_frac"] = m.wins / m.tried
        f["m.fail_frac"] = m.fails / m.tried
    return f


def _depth(by_id: Mapping[int, ExperimentView], e: ExperimentView) -> int:
    n, cur, seen = 0, e, set()
    while cur.parent_id is not None and cur.parent_id in by_id and cur.id not in seen:
        seen.add(cur.id)
        cur = by_id[cur.parent_id]
        n += 1
    return n


def _won_by(ctx: PolicyContext, by_id: Mapping[int, ExperimentView], best: ExperimentView) -> float | None:
    """How far the best beat the experiment it was made from, in the reward's scale (the noise floor, or 1 % of the
    baseline where that is larger: agent/reward.py): a step that won by far more than the noise says more about the
    next step in its direction than one that won by a hair. None when it has no parent with a metric."""
    parent = by_id.get(best.parent_id) if best.parent_id is not None else None
    if parent is None or parent.metric is None or best.metric is None:
        return None
    base = by_id.get(ctx.baseline_id) if ctx.baseline_id is not None else None
    floor = abs(float(base.metric)) * 0.01 if base is not None and base.metric is not None else 0.0
    scale = max(float(ctx.noise_floor or 0.0), floor, 1e-12)
    gain = Goal(ctx.goal).gain(float(best.metric), float(parent.metric))
    return max(0.0, min(1e3, gain / scale)) if math.isfinite(gain) else None


def _learned_fraction(e: ExperimentView) -> float:
    vals = [v for _, v in e.loss_curve if math.isfinite(v)]
    if len(vals) < 2 or vals[0] == 0:
        return 0.0
    return max(-1.0, min(1.0, (vals[0] - vals[-1]) / abs(vals[0])))


def _pathologies(ctx: PolicyContext, e: ExperimentView) -> list[str]:
    try:
        from nightlab.agent import diagnose

        found = diagnose.curve_pathologies(list(e.loss_curve), list(e.curve) or None, goal=ctx.goal,
                                           seconds=e.seconds, timeout_s=ctx.timeout_s)
    except Exception:  # a curve that cannot be read says nothing
        return []
    return [str(p.kind) for p in found]


__all__ = ["KNOB_KINDS", "PATHOLOGIES", "SOURCES", "TRANSFORMS", "MoveInfo", "move_features", "state_features"]
