"""The ledger: what the experiments scored and what follows from it — scores, the noise floor, the baseline, the
best, the ranked table.

Read-only over the store, and the one place these statistics are computed: the engine judges with them, and
`nightlab status`, the console table and the TUI show them (`summarize`), so every view agrees with the verdicts.
An experiment's score is the mean of its successful runs: its own and its seed re-runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from nightlab.agent import outcome
from nightlab.agent.config import ProjectConfig
from nightlab.agent.goal import Goal
from nightlab.agent.states import WINNERS, Kind, RunResult, Status
from nightlab.agent.store import Experiment, Session, Store


@dataclass
class Summary:
    """A session's results: its state and counts, the baseline's and the best's scores, one row per experiment."""

    session_id: int
    state: str
    runs_started: int
    baseline: float | None
    best_id: int | None
    best: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def ranked(self, goal: Goal | str) -> list[dict[str, Any]]:
        """Its rows best first (the table `nightlab run` ends with)."""
        return ranked(self.rows, goal)


class Ledger:
    def __init__(self, store: Store, goal: Goal | str, min_improvement: float = 0.0) -> None:
        self.store = store
        self.goal = Goal(goal)
        self.min_improvement = min_improvement

    @classmethod
    def of(cls, store: Store, cfg: ProjectConfig) -> Ledger:
        return cls(store, cfg.metric.goal, cfg.search.min_improvement)

    def baseline(self) -> Experiment | None:
        return self.store.baseline_experiment()

    def scores(self, exps: list[Experiment] | None = None) -> dict[int, list[float]]:
        """Experiment id -> metrics of its successful runs (its own and its seed re-runs)."""
        exps = exps if exps is not None else self.store.experiments()
        out: dict[int, list[float]] = {}
        for e in exps:
            if e.metric is None or e.run_result != RunResult.SUCCEEDED:
                continue
            key = e.rerun_of if e.kind == Kind.RERUN and e.rerun_of is not None else e.id
            out.setdefault(key, []).append(e.metric)
        return out

    def runs_by_seed(self) -> dict[int, dict[int, float]]:
        """Experiment id -> {seed: metric} of its successful runs (its own and its re-runs): for comparing two
        experiments seed by seed (agent/paired.py)."""
        out: dict[int, dict[int, float]] = {}
        for e in self.store.experiments():
            if e.metric is None or e.run_result != RunResult.SUCCEEDED:
                continue
            key = e.rerun_of if e.kind == Kind.RERUN and e.rerun_of is not None else e.id
            out.setdefault(key, {})[e.seed] = e.metric
        return out

    def deterministic(self) -> bool | None:
        """Whether the baseline's runs (the committed code and its re-runs) came out identical — the same metric,
        curves and masked output (agent/outcome.py): True / False once two have finished, None before."""
        base = self.baseline()
        if base is None:
            return None
        runs = [base, *self.store.reruns_of(base.id)]
        done = [r for r in runs if r.run_result == RunResult.SUCCEEDED and r.metric is not None]
        if len(done) < 2:
            return None
        return all(outcome.same_output(done[0], r) for r in done[1:])

    def score(self, exp_id: int, scores: dict[int, list[float]] | None = None) -> float | None:
        """The mean of an experiment's successful runs, None when it has none."""
        vals = (scores or self.scores()).get(exp_id)
        return statistics.fmean(vals) if vals else None

    def noise_floor(self) -> float:
        """The seed spread a change must beat (at least `search.min_improvement`).

        Measured on the baseline's seed runs; once at least two other experiments have been re-run with another seed
        (confirmations), their typical spread replaces it when it is smaller. A baseline that barely trains scatters
        far more between seeds than a model that trains well (one task: 0.589 vs 0.467 at the baseline, ±0.01 after
        the first fixes), and judging every later change by that spread throws real gains away. The typical spread
        is a log-scale (geometric) mean of the confirmations' standard deviations, not a pooled variance: the
        first confirmation is often of a model still barely trained (0.820 vs 0.667), and pooled with a tight pair
        near the best (0.937 vs 0.930) it set a floor of 0.077 that discarded a +0.03 gain; the log-scale mean
        gives 0.024 (search benchmark, one MLP task over five seeds: 0.960 -> 0.976, no other task changed). It only
        ever lowers the floor, and every change it lets through is still confirmed on a second seed.

        With one confirmation so far, the floor is the log-scale mean of the baseline's spread and that
        confirmation's, when smaller: a baseline whose second seed diverged (breast-cancer, seed 6: 0.689 vs 0.294)
        otherwise set a floor of 0.28 on a log-loss of 0.17 — after its first win the session could keep nothing
        more (standardising the inputs, 0.17 -> 0.086, was discarded as noise) until a second confirmation that,
        with nothing kept, never came.

        Measuring it at the current best alone was tried (2026-12-01): a two-seed estimate there is so noisy that it
        lost about as many real gains as it saved (demo best 0.660 -> 0.638). Building on a clear win (> 5x the
        noise) before its confirmation, to save the re-run, was tried too: children were then judged against a
        one-seed reference, spurious ones got kept, and the search benchmark did no better (one task 0.618 -> 0.604).
        """
        base = self.baseline()
        sc = self.scores()
        vals = sc.get(base.id, []) if base else []
        sd = statistics.stdev(vals) if len(vals) >= 2 else 0.0
        spreads = [(statistics.stdev(v), len(v) - 1) for k, v in sc.items()
                   if (base is None or k != base.id) and len(v) >= 2]
        spreads = [(s, dof) for s, dof in spreads if s > 0]
        if len(spreads) == 1 and sd > 0:  # one pair is no estimate of its own: between it and the baseline's
            spreads.append((sd, len(vals) - 1))
        if len(spreads) >= 2 and sd > 0:
            # a geometric (log-scale) mean: one early, barely trained pair scattered far apart must not outweigh
            # the pairs measured near the current best
            dof = sum(d for _, d in spreads)
            typical = math.exp(sum(math.log(s) * d for s, d in spreads) / dof)
            sd = min(sd, typical)
        return max(sd, self.min_improvement)

    def best(self, exclude: int | None = None) -> tuple[int | None, float | None]:
        """The kept (or promoted) experiment with the best score, and that score; the first of equals wins."""
        exps = self.store.experiments()
        sc = self.scores(exps)
        best_id, best_val = None, None
        for e in exps:
            if e.status not in WINNERS or e.kind == Kind.RERUN or e.id == exclude:
                continue
            v = self.score(e.id, sc)
            if v is None:
                continue
            if best_val is None or self.goal.better_than(v, best_val):
                best_id, best_val = e.id, v
        return best_id, best_val

    def summary(self, session: Session | None) -> Summary:
        """The ranked table's rows: every experiment (seed re-runs folded in) with its score and change vs the
        baseline, plus the baseline's and the best's scores."""
        exps = self.store.experiments()
        scores = self.scores(exps)
        base = next((e for e in exps if e.kind == Kind.BASELINE), None)
        base_val = self.score(base.id, scores) if base else None
        best_id, best_val = self.best()
        rows: list[dict[str, Any]] = []
        for e in exps:
            if e.kind == Kind.RERUN:
                continue
            vals = scores.get(e.id, [])
            val = statistics.fmean(vals) if vals else None
            rows.append({
                "id": e.id, "parent": e.parent_id, "status": e.status, "kind": e.kind, "title": e.title,
                "metric": val, "runs": len(vals), "seed": e.seed, "stage": e.stage, "reward": e.reward,
                "delta": (val - base_val) if val is not None and base_val is not None else None,
                "failure_class": e.failure_class, "seconds": e.seconds, "branch": e.branch, "commit": e.commit_sha,
                "unconfirmed": e.status == Status.UNCONFIRMED,
            })
        return Summary(
            session_id=session.id if session else 0, state=session.state if session else "none",
            runs_started=session.runs_started if session else 0, baseline=base_val,
            best_id=best_id, best=best_val, rows=rows,
        )


def summarize(store: Store, cfg: ProjectConfig, session: Session | None) -> Summary:
    """The ranked table of a project: every experiment with its (seed-averaged) metric and change vs the baseline."""
    return Ledger.of(store, cfg).summary(session)


def ranked(rows: list[dict[str, Any]], goal: Goal | str) -> list[dict[str, Any]]:
    """Summary rows best first (by their seed-averaged metric; rows without one last, then by id)."""
    g = Goal(goal)
    return sorted(rows, key=lambda r: (*g.rank_key(r["metric"]), r["id"]))


__all__ = ["Ledger", "Summary", "ranked", "summarize"]
