"""What the screen shows, read from the store in one go: a `Snapshot`.

A poller thread builds snapshots and posts one only when it differs from the last, so an idle project costs the UI
nothing and the widgets never read SQLite themselves. Nothing here imports textual.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import artifacts
from nightlab.agent.config import ProjectConfig
from nightlab.agent.ledger import summarize
from nightlab.agent.lock import ProjectLock
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import OPEN_JOB_STATES, ApprovalState, Kind, SessionState, Status
from nightlab.agent.store import Approval, Experiment, Job, Session, Store

EVENTS_KEPT = 500  # the newest decisions the events pane holds (the store keeps them all)


@dataclass(frozen=True)
class Row:
    """One experiment as the tables show it: seed-averaged metric and its change vs baseline and vs parent."""

    id: int
    parent: int | None
    title: str
    status: Status
    kind: Kind
    metric: float | None
    runs: int
    delta_base: float | None
    delta_parent: float | None
    seconds: float | None
    seed: int
    stage: str | None
    failure_class: str | None
    unconfirmed: bool = False  # kept on one seed: the budget ran out before its confirming re-run
    refused: bool = False  # rejected by the engine (a repeat, an invalid edit), not by a person


@dataclass(frozen=True)
class RunRef:
    """One run of a row: the experiment's own, or one of its seed re-runs, with its newest job."""

    exp_id: int
    seed: int
    job: Job
    metric: float | None = None

    @property
    def running(self) -> bool:
        return self.job.state in OPEN_JOB_STATES


@dataclass(frozen=True)
class EventLine:
    """One engine decision as the events pane shows it (from the store's events, which the engine writes)."""

    id: int
    t: float
    kind: str
    message: str
    experiment_id: int | None


@dataclass
class Snapshot:
    project: str
    metric: str
    goal: str
    session: Session | None = None
    engine: str = "no session"  # awake | hibernating | waiting | stopped | done | no session
    rows: list[Row] = field(default_factory=list)
    experiments: dict[int, Experiment] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)
    open_jobs: list[Job] = field(default_factory=list)
    latest_job: dict[int, Job] = field(default_factory=dict)
    baseline: float | None = None
    best_id: int | None = None
    slots_total: int = 1
    running_rows: list[int] = field(default_factory=list)
    artifacts: dict[int, artifacts.Artifacts] = field(default_factory=dict)  # what kept runs wrote (checkpoints), by id
    runs: dict[int, list[RunRef]] = field(default_factory=dict)  # per row: its own run and its seed re-runs, in order
    events: list[EventLine] = field(default_factory=list)  # the session's engine decisions, oldest first

    @property
    def budget(self) -> int:
        return self.session.budget if self.session else 0

    @property
    def runs_started(self) -> int:
        return self.session.runs_started if self.session else 0

    @property
    def budget_left(self) -> int:
        return max(0, self.budget - self.runs_started)

    def row(self, exp_id: int | None) -> Row | None:
        return next((r for r in self.rows if r.id == exp_id), None)

    def events_of(self, exp_id: int) -> list[EventLine]:
        """The decisions about one row: its own events and those of its seed re-runs."""
        mine = {exp_id, *(r.exp_id for r in self.runs.get(exp_id, []))}
        return [ev for ev in self.events if ev.experiment_id in mine]

    @property
    def running_ids(self) -> list[int]:
        """Rows with a job running: a seed re-run counts for the experiment it re-runs."""
        return list(self.running_rows)


def build_rows(summary_rows: list[dict[str, Any]], refused: frozenset[int] = frozenset()) -> list[Row]:
    """Rows from `summarize()`, with each one's change against its parent's (seed-averaged) metric."""
    metric_of = {r["id"]: r["metric"] for r in summary_rows}
    rows = []
    for r in summary_rows:
        parent_metric = metric_of.get(r["parent"]) if r["parent"] is not None else None
        dp = r["metric"] - parent_metric if r["metric"] is not None and parent_metric is not None else None
        rows.append(Row(
            id=r["id"], parent=r["parent"], title=r["title"] or "", status=r["status"], kind=r["kind"],
            metric=r["metric"], runs=r["runs"], delta_base=r["delta"], delta_parent=dp, seconds=r["seconds"],
            seed=r["seed"] or 0, stage=r["stage"], failure_class=r["failure_class"],
            unconfirmed=bool(r.get("unconfirmed")), refused=r["id"] in refused,
        ))
    return rows


class SnapshotLoader:
    """Reads snapshots for one project. Holds one Store per thread (SQLite connections stay in their thread)."""

    def __init__(self, root: Path, cfg: ProjectConfig) -> None:
        self.root = Path(root)
        self.cfg = cfg
        self._local = threading.local()
        self._slots: int | None = None

    def store(self) -> Store:
        st: Store | None = getattr(self._local, "store", None)
        if st is None:
            st = Store(StatePaths.of(self.root).db)
            self._local.store = st
        return st

    def slots_total(self) -> int:
        if self._slots is None:
            from nightlab.sandbox import slots

            self._slots = len(slots.discover(self.cfg.slots.cpus, self.cfg.slots.threads_per_job,
                                             self.cfg.slots.gpus)) or 1
        return self._slots

    def load(self) -> Snapshot:
        store = self.store()
        session = store.latest_session()
        summary = summarize(store, self.cfg, session)
        awake = ProjectLock(StatePaths.of(self.root).dir).is_held()
        if awake:
            engine = "awake"
        elif session is None:
            engine = "no session"
        elif session.state in (SessionState.HIBERNATING, SessionState.DONE):
            engine = session.state
        else:
            engine = "stopped"
        exps = {e.id: e for e in store.experiments()}

        def owner(exp_id: int) -> int:
            e = exps.get(exp_id)
            return e.rerun_of if e is not None and e.kind == Kind.RERUN and e.rerun_of is not None else exp_id

        latest: dict[int, Job] = {}  # per row: the newest job of the experiment or of its seed re-runs
        newest: dict[int, Job] = {}  # per experiment: its newest job (a retried run has several)
        for j in store.jobs():
            latest[owner(j.experiment_id)] = j
            newest[j.experiment_id] = j
        runs: dict[int, list[RunRef]] = {}
        for exp_id in sorted(newest):
            e = exps.get(exp_id)
            runs.setdefault(owner(exp_id), []).append(
                RunRef(exp_id, e.seed if e is not None else 0, newest[exp_id], e.metric if e is not None else None))
        open_jobs = store.open_jobs()
        running = list(dict.fromkeys(owner(j.experiment_id) for j in open_jobs))
        # a proposal a person rejected has a rejected approval; any other rejection is the engine's refusal
        by_person = {a.experiment_id for a in store.approvals(ApprovalState.REJECTED)}
        refused = frozenset(i for i, e in exps.items() if e.status == Status.REJECTED and i not in by_person)
        events = [EventLine(int(ev["id"]), float(ev["t"]), str(ev["kind"]), str(ev["message"]), ev["experiment_id"])
                  for ev in store.events(limit=-1, session_id=session.id)] if session is not None else []
        return Snapshot(
            project=self.root.name, metric=self.cfg.metric.name, goal=self.cfg.metric.goal, session=session,
            engine=engine, rows=build_rows(summary.rows, refused), experiments=exps,
            approvals=store.approvals(ApprovalState.PENDING), open_jobs=open_jobs, latest_job=latest,
            baseline=summary.baseline, best_id=summary.best_id, slots_total=self.slots_total(), running_rows=running,
            artifacts=artifacts.read_all(StatePaths.of(self.root).dir), runs=runs, events=events[-EVENTS_KEPT:],
        )


def patch_stat(patch: str | None) -> tuple[int, int, int]:
    """(files, added, removed) of a unified diff, counted from the text so no git call is needed."""
    if not patch:
        return 0, 0, 0
    files = added = removed = 0
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return files, added, removed


def fmt_metric(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def fmt_delta(v: float | None) -> str:
    return "" if v is None else f"{v:+.4f}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f}s"  # no space: a wrapped line never splits a figure from its unit
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def session_end_text(s: Snapshot) -> str:
    """What the TUI says when a session ends: the best if something beat the baseline (and how to promote it),
    else that nothing did; and why it ended, in the engine's own words where it said."""
    why = next((ev.message for ev in reversed(s.events) if ev.kind == "exhausted"), None)
    if why is None and s.session is not None and s.budget_left == 0:
        why = f"all {s.budget} runs of the budget were used"
    ended = f" It ended because {why}." if why else ""
    baseline = next((r for r in s.rows if r.kind == "baseline"), None)
    best = s.row(s.best_id)
    if best is None or best.metric is None or (baseline is not None and best.id == baseline.id):
        base = f" ({s.metric} {fmt_metric(s.baseline)})" if s.baseline is not None else ""
        return (f"The session is done: no change beat the baseline{base}; nothing to promote. The events pane says "
                f"why each change was set aside.{ended}")
    delta = f", {fmt_delta(best.delta_base)} vs baseline" if best.delta_base is not None else ""
    return (f"The session is done: the best is #{best.id} {best.title} ({s.metric} {fmt_metric(best.metric)}"
            f"{delta}); select it and press p to review and promote it.{ended}")
