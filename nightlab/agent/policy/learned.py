"""The `learned` policy: the builtin policy's candidate moves, in the order a model trained on experience prefers.

Each step it takes the builtin's first `CANDIDATES` moves (combinations, diagnosis remedies, transforms, widening,
knob search — in the builtin's own order), scores them with the model (policy/scorer.py) from the features of the
project, the best run's curve, the knob and the history (policy/features.py), draws an order from the softmax of
the scores at `[learned] temperature` (Gumbel-max with the step's own seeded rng, so a resumed session draws the
same), and proposes the first move in that order that applies. When none of them applies it goes on through the
rest of the builtin's moves in the builtin's order. Fixes are the builtin's (the fix catalogue).

It also weighs moves the builtin does not make (`beyond_builtin`), appended after the builtin's: the pattern move
of a pattern search (Hooke and Jeeves, 1961) — the best was reached by changing one knob alone, so that change is
taken once more in the same direction by the same factor (a width 32 → 128 that won: 128 → 512). The builtin leaves
it out: in general it overshoots as often as it pays (a learning rate raised twice diverges), and a fixed order
cannot tell which. The learned policy can: it takes the move where its data say such moves paid (its knob kind,
direction and the state are features), and under the rule below never where the data have not seen it.

A move beyond the builtin's has no place in the builtin's order, and the model is anchored there (trained to move
away from that order only as far as the data push it, agent/learn.py): scored like the others it stays last, since
the order it starts from ranks it last (measured: with 45 explored pattern steps it was never scored first, even on
the task whose data showed it paying). So it is weighed by its outcomes instead (scorer.outcome_class): how moves
of its knob kind and direction fared in the data, whoever proposed them, when the best run was in the same regime
(underfitting, overfitting or neither, as diagnosed from its curves). It goes first where that class was taken at
least `min_support` times and its mean advantage (reward − its project's mean reward) less one standard error is
above zero and above the mean advantage of the builtin's own first move's class in that regime — a high-confidence
improvement in the sense of Thomas et al. (2015). Otherwise it keeps its place after the builtin's moves, and is
reached only when none of those applies. The regime is what lets experience carry over: keyed by kind and
direction alone, the second widening that paid on an underfitting task was outvoted by widenings that lost on tasks
that fit their data already (bench/learn.py, stop 50: held out it never went first); keyed by regime too, the
widenings of other underfitting tasks vouch for it.

Only moves the experience vouches for are reordered. A candidate whose class of move (source, knob kind, transform,
direction: scorer.move_class) was taken fewer than `[learned] min_support` times in the model's data keeps its place
in the builtin's order; the others are drawn into the remaining places by their scores. This is SPIBB's safe policy
improvement with a deterministic baseline (Laroche et al., 2019): where the data are thin the policy is the
builtin, and it departs from it only on moves whose outcomes it has seen often enough. The builtin's first move is
overtaken only when it is itself supported and a supported alternative scores higher; a first move the data never
saw stays first.

Within a session it learns as rewards arrive: `observe` (called by the engine when a step's run settles, and
again for the session's settled steps when an engine resumes it) takes one duration-weighted policy-gradient step
on the model in memory (`[learned] online_lr`); the file on disk changes only through `nightlab learn`.

Without a model file it is exactly the builtin policy: every call goes to BuiltinPolicy unchanged.

`ExplorePolicy` (used by `nightlab explore`) draws among the same candidates at a high temperature, to grow the
experience store with moves the builtin's fixed order would seldom try; a move beyond the builtin's is drawn first
most of the time, so the store learns what it is worth.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_change
from nightlab.agent.policy import search as searchmod
from nightlab.agent.policy.builtin import BuiltinPolicy, phase_of, scale_value
from nightlab.agent.policy.feedback import Rejections
from nightlab.agent.policy.scorer import PRIOR, Bound, ModelError, Scorer, default_model_path
from nightlab.agent.policy.searchable import is_numeric
from nightlab.agent.policy.state import ExperimentState, Move, fmt_value, norm_value
from nightlab.agent.proposal import PolicyContext, Proposal
from nightlab.agent.states import Kind, RunResult

log = logging.getLogger("nightlab.policy.learned")

CANDIDATES = 8  # the builtin's first moves that are scored each step
# a move beyond the builtin's goes first where its class's mean advantage is this many standard errors above zero
# (and above the builtin's first move's class): about 84 % one-sided, with `min_support` outcomes at least
CONFIDENCE_Z = 1.0
MIN_SECONDS = 1.0  # a run's duration is counted as at least this (an instant failure still teaches something)


class LearnedPolicy(BuiltinPolicy):
    name = "learned"

    def __init__(self, scorer: Scorer | None = None, *, temperature: float = 0.3, online_lr: float = 0.05,
                 min_support: int = 5) -> None:
        super().__init__()
        self.scorer = scorer
        self.temperature = temperature
        self.online_lr = online_lr
        self.min_support = min_support
        self._seen: set[int] = set()  # steps already learned from in this process
        self._rewards: list[tuple[float, float]] = []  # (reward, duration) of those steps, for the baseline

    @classmethod
    def from_config(cls, cfg: Any, root: Path | None = None) -> LearnedPolicy:
        """The policy `[learned]` describes; no model file at the default place means the builtin's behaviour, a
        model file named in the config that cannot be read is an error (ModelError names the file)."""
        path = Path(cfg.model).expanduser() if cfg.model else default_model_path()
        if cfg.model and not path.is_absolute() and root is not None:
            path = Path(root) / path
        scorer = None
        if path.exists():
            scorer = Scorer.load(path)
        elif cfg.model:
            raise ModelError(f"{path}: no such model file ([learned] model); train one with `nightlab learn`")
        return cls(scorer, temperature=cfg.temperature, online_lr=cfg.online_lr, min_support=cfg.min_support)

    # ------------------------------------------------------------------------------------------- propose
    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if self.scorer is None:
            return super().propose(ctx)
        self.last_decision = None
        self.unfit = ()
        if ctx.best_id is None:
            return self._propose_without_best(ctx)
        st = self._state(ctx, ctx.best_id)
        if st.exp is None:
            return None
        sigs = self._signatures(ctx)
        # the same stream as the builtin's: people's rejections and feedback hold whichever policy decides (a move
        # their feedback asked for leads the candidates, and the scorer does not overrule it: see below)
        stream = self._moves_heeding_people(ctx, st)
        moves = list(itertools.islice(stream, CANDIDATES))
        if not moves:
            return None
        builtin = len(moves)
        said = self._rejections(ctx, st)
        moves += self.beyond_builtin(ctx, st, moves, said)
        decision = self._decision(ctx, st, moves, chosen=-1, tried=set())
        scores = self._weigh(self.scorer.scores(decision.state, [c.features for c in decision.candidates]), builtin)
        asked = [i for i, m in enumerate(moves) if said.wants(m.changes, m.transform)]
        order = self.order(scores, ctx.rng, [self.scorer.support_of(c.features) >= self.min_support
                                             for c in decision.candidates])
        first = decision.candidates[0].features
        ahead = [i for i in range(builtin, len(moves))
                 if self._pays(decision.state, decision.candidates[i].features, first)]
        order = [*ahead, *(i for i in order if i not in ahead)]
        for i in [*(j for j in order if j in asked), *(j for j in order if j not in asked)]:
            prop = self._materialise(ctx, st, moves[i], sigs)
            decision.candidates[i].valid = prop is not None
            if prop is not None:
                decision.chosen = i
                self.last_decision = decision
                return prop
        for move in stream:  # none of the scored moves applies: the rest in the builtin's order
            prop = self._materialise(ctx, st, move, sigs)
            if prop is not None:
                moves.append(move)
                tried = set(range(len(moves)))
                self.last_decision = self._decision(ctx, st, moves, len(moves) - 1, tried)
                return prop
        return None

    def beyond_builtin(self, ctx: PolicyContext, st: ExperimentState, moves: list[Move],
                       said: Rejections) -> list[Move]:
        """Moves the builtin policy does not make, for the model to weigh after the builtin's own `moves`: the
        pattern move (see the module's docstring). People's rejections (`said`) and an approved plan's phases hold
        for it as for every move."""
        best = st.exp
        if (best is None or best.kind != Kind.HYPERPARAMETER or best.run_result != RunResult.SUCCEEDED
                or best.metric is None or len(st.lineage) < 2):
            return []
        parent_exp = st.lineage[1]
        parent = self._assignment_of(ctx, parent_exp)
        if parent is None:
            return []
        moved = [k for k, v in st.assignment.items() if k in parent and norm_value(parent[k]) != norm_value(v)]
        if len(moved) != 1 or moved[0] not in st.knobs:
            return []
        key = moved[0]
        knob, old = st.knobs[key], parent[key]
        if (not knob.searchable or knob.space is None or not is_numeric(knob.value) or not is_numeric(old)
                or float(old) <= 0 or float(knob.value) <= 0):  # (within its search range, like every knob move)
            return []
        new = scale_value(knob, float(knob.value) / float(old))
        if new is None or searchmod.same(new, knob.value):
            return []
        if any(set(m.changes) == {key} and norm_value(m.changes[key]) == norm_value(new) for m in moves):
            return []  # the builtin's own candidates hold it already
        if not self._affordable(ctx, st, {key: new}):
            return []
        verb = "raise" if new > knob.value else "lower"
        gain = ""
        if parent_exp.metric is not None:
            gain = f" ({fmt_change(Goal(ctx.goal).gain(float(best.metric), float(parent_exp.metric)))})"
        move = Move(
            title=f"{verb} {key} from {fmt_value(knob.value)} to {fmt_value(new)} (#{best.id}'s step once more)",
            rationale=(f"#{best.id} changed {key} alone, {fmt_value(old)} → {fmt_value(knob.value)}, and became the "
                       f"best{gain}. A pattern search takes a step that paid once more in the same direction: "
                       f"{fmt_value(knob.value)} → {fmt_value(new)}. The builtin order leaves this out (as often as "
                       "it pays it overshoots); the learned policy proposes it because its experience says moves "
                       "like it paid."),
            changes={key: new}, source="pattern")
        if said.refuses(move.changes, move.transform, norm_value):
            return []
        if ctx.phases and phase_of(st, move) not in ctx.phases:
            return []
        return [move]

    def _pays(self, state: dict[str, float], move: dict[str, float], first: dict[str, float]) -> bool:
        """Whether a move beyond the builtin's goes first: its class of move in this regime (scorer.outcome_class)
        was taken `min_support` times or more in the data, and its mean advantage less `CONFIDENCE_Z` standard
        errors is above zero and above the mean advantage of the builtin's own first move's class (where the data
        know that class)."""
        assert self.scorer is not None
        bound = self.scorer.advantage_bound(state, move, CONFIDENCE_Z)
        if bound is None or bound.n < max(2, self.min_support):
            return False
        rival = self.scorer.advantage_bound(state, first, CONFIDENCE_Z)
        return bound.low > max(0.0, rival.mean if rival is not None else 0.0)

    def _weigh(self, scores: np.ndarray, builtin: int) -> np.ndarray:
        """The scores the order is drawn from, given that the first `builtin` candidates are the builtin's own:
        the model's scores as they are (exploring weighs the rest otherwise)."""
        return scores

    def order(self, scores: np.ndarray, rng: random.Random, supported: list[bool] | None = None) -> list[int]:
        """Candidate indices (the builtin's order is 0, 1, ...) in the order to try them: a draw from the softmax at
        this temperature (Gumbel-max), the scores' own order at temperature 0; a candidate not `supported` keeps its
        own place, and the supported ones are drawn into the places left."""
        if self.temperature <= 0:
            drawn = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
        else:
            keys = [float(s) / self.temperature - math.log(-math.log(max(rng.random(), 1e-12))) for s in scores]
            drawn = sorted(range(len(scores)), key=lambda i: -keys[i])
        if supported is None:
            return drawn
        places = [i for i in range(len(scores)) if supported[i]]
        out = list(range(len(scores)))
        for place, i in zip(places, (j for j in drawn if supported[j]), strict=True):
            out[place] = i
        return out

    # ------------------------------------------------------------------------------------------- learning
    def observe(self, step: dict[str, Any]) -> None:
        """Learn from a settled step: its move now counts as experience (support, and its advantage over the
        session's mean reward so far among its class's outcomes), and with `online_lr` > 0 one
        online policy-gradient step from its reward (see agent/learn.py for the objective): advantage = reward − the
        duration-weighted mean reward seen so far this session, weighted by the run's duration over the mean
        duration seen so far."""
        if self.scorer is None or step.get("id") in self._seen:
            return
        self._seen.add(int(step.get("id") or 0))
        reward, chosen = step.get("reward"), step.get("chosen")
        if reward is None or chosen is None:
            return
        seconds = max(MIN_SECONDS, float(step.get("seconds") or 0.0))
        self._rewards.append((float(reward), seconds))
        all_cands = step.get("candidates") or []
        if not 0 <= chosen < len(all_cands) or all_cands[chosen].get("valid") is False:
            return
        total = sum(d for _, d in self._rewards)
        baseline = sum(r * d for r, d in self._rewards) / total
        taken = all_cands[chosen].get("features") or {}
        self.scorer.add_support(taken)  # seen here: it now counts as experience, and so does how it fared
        self.scorer.add_outcome(step.get("state") or {}, taken, float(reward) - baseline)
        cands = [c for c in all_cands if c.get("valid") is not False]
        if self.online_lr <= 0 or len(cands) < 2:
            return
        index = [i for i, c in enumerate(all_cands) if c.get("valid") is not False].index(chosen)
        weight = seconds / (total / len(self._rewards))
        self.scorer.update(step.get("state") or {}, [c.get("features") or {} for c in cands], index,
                           weight * (float(reward) - baseline), self.online_lr)


def paying_outcomes(scorer: Scorer, min_support: int) -> list[tuple[str, Bound]]:
    """The classes of move, by regime, that paid confidently in a model's data: taken `min_support` times or more,
    with a mean advantage above zero by `CONFIDENCE_Z` standard errors (where `_pays` lets a move beyond the
    builtin's go first), most confident first — what `nightlab learn` tells the user."""
    out = []
    for key in scorer.outcomes:
        bound = scorer.bound_of(key, CONFIDENCE_Z)
        if bound is not None and bound.n >= min_support and bound.low > 0:
            out.append((key, bound))
    return sorted(out, key=lambda c: -c[1].low)


class ExplorePolicy(LearnedPolicy):
    """Diverse moves for the experience store: the builtin's candidates drawn at a high temperature from the
    learned scores (or, without a model, from the builtin's own order), and no online updates."""

    name = "explore"

    def __init__(self, scorer: Scorer | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(scorer or Scorer.fresh(["m.rank"], hidden=1), temperature=temperature, online_lr=0.0,
                         min_support=0)  # exploring: every candidate may be drawn

    def _pays(self, state: dict[str, float], move: dict[str, float], first: dict[str, float]) -> bool:
        """Exploring draws every move by its weight (below), whatever the outcomes say."""
        return False

    def _weigh(self, scores: np.ndarray, builtin: int) -> np.ndarray:
        """A move beyond the builtin's is drawn first most of the time (e^PRIOR to one against the candidate the
        model likes best): only exploring can show what such a move is worth, and it exists at few steps (a best
        reached by one knob alone), so drawn like the rest it would seldom reach the store often enough to count
        (measured: 3 of 14 explore sessions took one)."""
        if len(scores) <= builtin or builtin == 0:
            return scores
        out = np.array(scores, dtype=float)
        out[builtin:] = np.maximum(out[builtin:], float(np.max(out[:builtin])) + PRIOR)
        return out

    @classmethod
    def with_user_model(cls, temperature: float = 1.0) -> ExplorePolicy:
        """`nightlab explore`'s policy: drawing from the scores of the model `nightlab learn` wrote at the default
        place when there is one, else from the builtin's order."""
        model = default_model_path()
        return cls(Scorer.load(model) if model.exists() else None, temperature=temperature)


__all__ = ["CANDIDATES", "CONFIDENCE_Z", "ExplorePolicy", "LearnedPolicy", "ModelError", "paying_outcomes"]
