"""Everything the morning report shows, read from the store once: runs in launch order with their outcomes, the
experiment tree, failures with their fix attempts, each decision with its reason, what waits for the user, and the
best change's diff against the user's branch.

The statistics (seed-averaged scores, baseline, best, the noise floor) are not computed here: they are the
ledger's (`Standing.of`), the same the engine judged with, so the report can never disagree with `nightlab status`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.goal import Goal
from nightlab.agent.ledger import Ledger, ranked
from nightlab.agent.lock import ProjectLock
from nightlab.agent.paths import StatePaths
from nightlab.agent.report.outcomes import (
    BASELINE_KIND,
    RERUN_KIND,
    Outcome,
    experiment_outcome,
    run_outcome,
)
from nightlab.agent.states import ApprovalKind, ApprovalState, EventKind, RunResult, SessionState, Status
from nightlab.agent.store import Experiment, Session, Store

# events that record progress rather than a decision; every other kind (including kinds added later, such as a
# "no effect" verdict) is listed among the decisions
NOT_DECISIONS = frozenset({
    EventKind.SESSION, EventKind.BASELINE, EventKind.PROPOSED, EventKind.STARTED, EventKind.FINISHED,
    EventKind.HIBERNATE, "step", EventKind.EDITED, EventKind.NOTIFY_ERROR, EventKind.APPROVAL, "engine",
    EventKind.REPORT, EventKind.REPORT_ERROR, EventKind.DONE,
})
DECISION_LABELS: dict[str, str] = {
    EventKind.NOISE: "noise measured", EventKind.KEPT: "kept", EventKind.DISCARDED: "discarded",
    EventKind.CONFIRM: "re-run to confirm", EventKind.DUPLICATE: "refused: a repeat", EventKind.POLICY_ERROR: "refused",
    EventKind.ABANDON: "branch abandoned", EventKind.EXHAUSTED: "nothing left to try",
    EventKind.REJECTED: "rejected by you", EventKind.APPROVED: "approved", EventKind.FAILED: "failed",
    EventKind.LOST: "lost", EventKind.PROMOTED: "promoted", EventKind.INTERRUPTED: "interrupted",
    EventKind.BUDGET: "model budget reached", EventKind.NO_EFFECT: "no effect",
    EventKind.STOPPED_EARLY: "stopped early",
}


@dataclass
class Standing:
    """The ledger's verdicts as the report shows them: the ranked summary rows (seed-averaged metric per
    experiment), the baseline's score, the best experiment and the noise floor a change had to beat."""

    baseline: float | None
    best_id: int | None
    best: float | None
    noise_floor: float | None
    ranked: list[dict[str, Any]]

    def row(self, exp_id: int) -> dict[str, Any] | None:
        return next((r for r in self.ranked if r["id"] == exp_id), None)

    def score(self, exp_id: int | None) -> float | None:
        r = self.row(exp_id) if exp_id is not None else None
        return r["metric"] if r else None

    @classmethod
    def of(cls, store: Store, cfg: ProjectConfig, session: Session) -> Standing:
        """As the ledger has it now: the statistics are the ones the engine judged with, never recomputed here."""
        ledger = Ledger.of(store, cfg)
        summary = ledger.summary(session)
        return cls(baseline=summary.baseline, best_id=summary.best_id, best=summary.best,
                   noise_floor=ledger.noise_floor() if ledger.baseline() is not None else None,
                   ranked=ranked(summary.rows, cfg.metric.goal))


@dataclass
class Run:
    """One training run (an experiment's own run or a seed re-run of it), numbered in launch order."""

    index: int
    exp: Experiment
    target_id: int  # the experiment whose verdict this run counts for
    outcome: Outcome
    in_session: bool

    @property
    def metric(self) -> float | None:
        return self.exp.metric if self.exp.run_result == RunResult.SUCCEEDED else None


@dataclass
class TreeNode:
    exp: Experiment
    outcome: Outcome
    score: float | None
    runs: int
    vs_parent: float | None
    note: str
    children: list[TreeNode] = field(default_factory=list)


@dataclass
class FixAttempt:
    exp: Experiment
    outcome: Outcome
    note: str


@dataclass
class FailedRun:
    exp: Experiment
    fixes: list[FixAttempt]
    given_up: str | None  # why no (further) fix was tried, from the events


@dataclass
class FailureGroup:
    cls: str
    runs: list[FailedRun]


@dataclass
class DecisionRecord:
    t: float
    exp_id: int | None
    kind: str
    label: str
    reason: str


@dataclass
class Waiting:
    what: str
    command: str


@dataclass
class BestChange:
    exp: Experiment
    diff: str
    stat: str
    promoted: bool
    note: str | None  # why the diff is missing, if it is


@dataclass
class SeedGroup:
    """An experiment run on several seeds: each seed's metric and the mean the engine judged it by."""

    exp: Experiment
    outcome: Outcome
    values: list[tuple[int, float]]
    mean: float | None


@dataclass
class Curve:
    role: str  # "best", "parent", "baseline"
    exp: Experiment
    metric: list[tuple[float, float]]
    loss: list[tuple[float, float]]


@dataclass
class Facts:
    root: Path
    metric: str
    goal: Goal
    session: Session
    state_note: str
    standing: Standing
    runs: list[Run]
    running: list[Experiment]
    compute_s: float
    wall_s: float
    waiting: list[Waiting]
    tree: list[TreeNode]
    failures: list[FailureGroup]
    decisions: list[DecisionRecord]
    best_change: BestChange | None
    seeds: list[SeedGroup]
    curves: list[Curve]
    experiments: dict[int, Experiment]
    written: float

    @property
    def session_runs(self) -> list[Run]:
        return [r for r in self.runs if r.in_session]

    @property
    def short(self) -> bool:
        """Nothing ran in this session: the report is the headline and what waits, not empty plots."""
        return not self.session_runs

    @property
    def improved(self) -> bool:
        s = self.standing
        base = self.baseline_exp
        return s.best_id is not None and s.best is not None and s.baseline is not None and \
            (base is None or s.best_id != base.id)

    @property
    def baseline_exp(self) -> Experiment | None:
        return next((e for e in self.experiments.values() if e.kind == BASELINE_KIND), None)

    def outcome(self, exp_id: int) -> Outcome:
        return experiment_outcome(self.experiments[exp_id])


def gather(root: Path, cfg: ProjectConfig, store: Store, session: Session) -> Facts:
    standing = Standing.of(store, cfg, session)
    exps = store.experiments()
    by_id = {e.id: e for e in exps}
    runs = _runs(store, exps, by_id, session.id)
    session_runs = [r for r in runs if r.in_session]
    every_event = store.events(limit=-1)
    events = [ev for ev in every_event if ev["session_id"] == session.id]
    last_t = max([session.created] + [ev["t"] or 0.0 for ev in events])
    return Facts(
        root=Path(root), metric=cfg.metric.name, goal=cfg.metric.goal, session=session,
        state_note=_state_note(root, store, session), standing=standing, runs=runs,
        running=[e for e in exps if e.status == Status.RUNNING],
        compute_s=sum(r.exp.seconds or 0.0 for r in session_runs), wall_s=max(0.0, last_t - session.created),
        waiting=_waiting(store, standing), tree=_tree(exps, standing, _verdicts(every_event)),
        failures=_failures(exps, every_event), decisions=_decisions(events),
        best_change=_best_change(root, store, standing, by_id), seeds=_seeds(runs, standing, by_id),
        curves=_curves(standing, by_id, exps), experiments=by_id, written=time.time(),
    )


def _runs(store: Store, exps: list[Experiment], by_id: dict[int, Experiment], sid: int) -> list[Run]:
    """Every run that produced a result, in the order its first job started (experiment id where none did)."""
    started: dict[int, float] = {}
    for j in store.jobs():
        if j.started is not None:
            started.setdefault(j.experiment_id, j.started)
    ran = [e for e in exps if e.run_result is not None]
    ran.sort(key=lambda e: (started.get(e.id, e.created), e.id))
    out = []
    for i, e in enumerate(ran, 1):
        target_id = e.rerun_of if e.kind == RERUN_KIND and e.rerun_of is not None else e.id
        out.append(Run(index=i, exp=e, target_id=target_id, outcome=run_outcome(e, by_id.get(target_id)),
                       in_session=e.session_id == sid))
    return out


def _state_note(root: Path, store: Store, session: Session) -> str:
    if session.state == SessionState.DONE:
        return "finished"
    if session.state == SessionState.HIBERNATING:
        jobs = len(store.open_jobs())
        return (f"hibernating: {jobs} job(s) running; they wake nightlab when they end" if jobs
                else "hibernating: " + ("; ".join(session.wake_conditions) or "waiting"))
    if ProjectLock(StatePaths.of(root).dir).is_held():
        return "running now" if session.state == SessionState.ACTIVE else "waiting for you"
    return "stopped without finishing (the engine crashed or was killed); `nightlab wake` resumes it"


def _waiting(store: Store, standing: Standing) -> list[Waiting]:
    out: list[Waiting] = []
    for a in store.approvals(ApprovalState.PENDING):
        n = a.experiment_id
        if a.kind == ApprovalKind.PROMOTE:
            out.append(Waiting(f"review the best result #{n} and put it on your branch", f"nightlab promote {n}"))
        elif a.kind == ApprovalKind.HYPOTHESIS:
            out.append(Waiting(f"approve or reject proposal #{n}: {a.payload.get('title', '')}".rstrip(": "),
                               f"nightlab approve {n}"))
        elif a.kind == ApprovalKind.COMPUTE:
            out.append(Waiting(f"the compute budget is spent: {a.payload.get('reason', '')}".rstrip(": "),
                               "nightlab approve compute"))
        elif a.kind == ApprovalKind.BUDGET:
            out.append(Waiting(f"the model cost reached its budget (${a.payload.get('spent', 0):.2f})",
                               "nightlab approve budget"))
        else:
            out.append(Waiting(f"{a.kind} #{n}", f"nightlab approve {n}"))
    best = standing.row(standing.best_id) if standing.best_id is not None else None
    if best is not None and best.get("unconfirmed"):
        out.append(Waiting(f"#{best['id']} is the best on one seed only; the next run confirms it first",
                           "nightlab run"))
    return out


def _verdicts(events: list[dict[str, Any]]) -> dict[int, str]:
    """Experiment id -> the reason given with its last verdict event (kept, discarded, refused, …)."""
    out: dict[int, str] = {}
    for ev in events:
        if ev["experiment_id"] is not None and \
                ev["kind"] not in NOT_DECISIONS | {EventKind.CONFIRM, EventKind.APPROVED, EventKind.NOISE}:
            out[ev["experiment_id"]] = _without_id(ev["message"] or "", ev["experiment_id"])
    return out


def _without_id(message: str, exp_id: int) -> str:
    """'#7 discarded: 0.61 vs best 0.66: no improvement' -> 'discarded: 0.61 vs best 0.66: no improvement'."""
    for prefix in (f"#{exp_id} ", f"refused #{exp_id} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _note(e: Experiment, verdicts: dict[int, str] | None = None) -> str:
    """The reason recorded with an experiment's verdict (or its failure's diagnosis)."""
    judged = e.status in (Status.DISCARDED, Status.REJECTED, Status.KEPT, Status.LOST)
    text = (verdicts or {}).get(e.id) or (e.error if judged and e.error else (e.diagnosis or ""))
    return " ".join(text.split())[:300]


def _tree(exps: list[Experiment], standing: Standing, verdicts: dict[int, str]) -> list[TreeNode]:
    nodes: dict[int, TreeNode] = {}
    for e in exps:
        if e.kind == RERUN_KIND:
            continue
        row = standing.row(e.id)
        nodes[e.id] = TreeNode(exp=e, outcome=experiment_outcome(e), score=row["metric"] if row else None,
                               runs=row["runs"] if row else 0, vs_parent=None, note=_note(e, verdicts))
    roots: list[TreeNode] = []
    for node in nodes.values():
        parent = nodes.get(node.exp.parent_id) if node.exp.parent_id is not None else None
        if parent is None:
            roots.append(node)
            continue
        parent.children.append(node)
        if node.score is not None and parent.score is not None:
            node.vs_parent = node.score - parent.score
    return roots


def _failures(exps: list[Experiment], events: list[dict[str, Any]]) -> list[FailureGroup]:
    given_up = {ev["experiment_id"]: ev["message"] for ev in events if ev["kind"] == EventKind.ABANDON}
    groups: dict[str, list[FailedRun]] = {}
    for e in exps:
        if e.run_result in (None, RunResult.SUCCEEDED):
            continue
        fixes = [FixAttempt(c, experiment_outcome(c), _note(c)) for c in exps
                 if c.parent_id == e.id and c.kind != RERUN_KIND]
        cls = e.failure_class or e.run_result or "unknown"
        groups.setdefault(cls, []).append(FailedRun(e, fixes, given_up.get(e.id)))
    return [FailureGroup(cls, runs) for cls, runs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


def _decisions(events: list[dict[str, Any]]) -> list[DecisionRecord]:
    out = []
    for ev in events:
        kind = ev["kind"] or ""
        if kind in NOT_DECISIONS:
            continue
        label = DECISION_LABELS.get(kind, kind.replace("_", " "))
        out.append(DecisionRecord(t=ev["t"] or 0.0, exp_id=ev["experiment_id"], kind=kind, label=label,
                                  reason=ev["message"] or ""))
    return out


def _best_change(root: Path, store: Store, standing: Standing, by_id: dict[int, Experiment]) -> BestChange | None:
    e = by_id.get(standing.best_id) if standing.best_id is not None else None
    if e is None or e.kind == BASELINE_KIND:
        return None
    from nightlab.agent.workspace import Workspace

    try:
        ws = Workspace(root)
        base = store.chain_base(e) or ws.head_commit()
        if not e.commit_sha:
            raise ValueError(f"#{e.id} has no commit")
        return BestChange(e, ws.diff(base, e.commit_sha), ws.diff_stat(base, e.commit_sha).summary(),
                          e.status == Status.PROMOTED, None)
    except Exception as err:  # a pruned branch or a moved repository costs the diff, never the whole report
        return BestChange(e, e.patch or "", "", e.status == Status.PROMOTED,
                          f"the diff against your branch is unavailable ({err}); this is the change against its "
                          "parent")


def _seeds(runs: list[Run], standing: Standing, by_id: dict[int, Experiment]) -> list[SeedGroup]:
    values: dict[int, list[tuple[int, float]]] = {}
    for r in runs:
        if r.metric is not None:
            values.setdefault(r.target_id, []).append((r.exp.seed, r.metric))
    out = []
    for exp_id, vals in values.items():
        e = by_id.get(exp_id)
        if e is None or len(vals) < 2:
            continue
        out.append(SeedGroup(e, experiment_outcome(e), sorted(vals), standing.score(exp_id)))
    return out


def _curves(standing: Standing, by_id: dict[int, Experiment], exps: list[Experiment]) -> list[Curve]:
    base = next((e for e in exps if e.kind == BASELINE_KIND), None)
    best = by_id.get(standing.best_id) if standing.best_id is not None else None
    parent = by_id.get(best.parent_id) if best is not None and best.parent_id is not None else None
    out: list[Curve] = []
    for role, e in (("best", best), ("parent", parent), ("baseline", base)):
        if e is None or any(c.exp.id == e.id for c in out):
            continue
        out.append(Curve(role, e, [(float(p[0]), float(p[1])) for p in e.curve],
                         [(float(p[0]), float(p[1])) for p in e.loss_curve]))
    return out
