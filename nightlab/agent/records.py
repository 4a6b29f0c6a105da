"""The store's records as plain values: an experiment, a session, an approval, a job — what a row of the store says.

They hold no connection and no path to the store (the store reads them from its rows, `from_row`, and writes them
from changes it is given), so everything can hold them: the engine and its rooms, the front desk's views, and the
front-ends, which get them from the desk and never open the store themselves. They are frozen: a record is what the
store said when it was read; a change goes through the store (and, from a front-end, through the desk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from nightlab.agent.states import (
    ApprovalKind,
    ApprovalState,
    FailureClass,
    JobState,
    Kind,
    Mode,
    Pricing,
    RunResult,
    SessionState,
    Status,
)

_FAILURE_CLASSES = frozenset(FailureClass)


@dataclass(frozen=True)
class Experiment:
    id: int
    session_id: int | None = None
    parent_id: int | None = None
    title: str = ""
    rationale: str = ""
    expected_effect: str = ""
    kind: Kind = Kind.HYPERPARAMETER
    knobs: dict[str, Any] = field(default_factory=dict)
    edits: list[dict[str, str]] = field(default_factory=list)
    patch: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    status: Status = Status.PROPOSED
    run_result: RunResult | None = None
    metric: float | None = None
    curve: list[list[float]] = field(default_factory=list)
    failure_class: str | None = None  # a FailureClass (read back as one when it is a known class)
    diagnosis: str | None = None
    seconds: float | None = None
    seed: int = 0
    created: float = 0.0
    updated: float = 0.0
    stage: str | None = None
    reward: float | None = None
    rerun_of: int | None = None
    loss_curve: list[list[float]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    isolation: list[str] = field(default_factory=list)
    attempts: int = 0
    policy: str | None = None
    log_tail: str | None = None
    depth: int = 0
    protected_changed: list[str] = field(default_factory=list)
    settled: int = 0
    command: str | None = None  # its own training command; None: the project's
    digest: str | None = None  # of its run's output with timings masked (see agent/outcome.py)
    phase: str | None = None  # the plan phase it was proposed in (agent/plan.py); None: no plan was followed
    predicted_s: float | None = None  # its run's seconds as the policy predicted them (None: it did not say)
    priced: Pricing | None = None  # how they were predicted (PARENT: they could not be; its parent's time stands)
    fixed_s: float | None = None  # of its run's seconds, those that do not grow with the training length (measured)

    JSON_FIELDS = ("knobs", "edits", "curve", "loss_curve", "usage", "isolation", "protected_changed")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Experiment:
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in row.items() if k in names}
        for k in cls.JSON_FIELDS:
            raw = data.get(k)
            data[k] = json.loads(raw) if isinstance(raw, str) and raw else ({} if k in ("knobs", "usage") else [])
        for k in ("seed", "attempts", "depth", "settled"):
            if data.get(k) is None:
                data[k] = 0
        for k in ("title", "rationale", "expected_effect"):
            if data.get(k) is None:
                data[k] = ""
        data["status"] = Status(data.get("status") or Status.PROPOSED)
        data["kind"] = Kind(data.get("kind") or Kind.HYPERPARAMETER)
        data["run_result"] = RunResult(data["run_result"]) if data.get("run_result") else None
        data["priced"] = Pricing(data["priced"]) if data.get("priced") in set(Pricing) else None
        fc = data.get("failure_class")
        # a class this version does not know (written by a newer diagnosis) stays as written
        data["failure_class"] = FailureClass(fc) if fc in _FAILURE_CLASSES else fc
        return cls(**data)


@dataclass(frozen=True)
class Session:
    id: int
    project: str
    mode: Mode
    policy: str
    budget: int
    runs_started: int
    state: SessionState
    wake_conditions: list[str]
    base_commit: str | None
    base_branch: str | None
    noise_floor: float | None
    cost: float
    created: float
    pid: int | None
    unsafe: bool = False
    seeding: str | None = None  # how noise runs and confirmations vary the seed (see agent/seeding.py)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Session:
        return cls(
            id=row["id"], project=row["project"] or "", mode=Mode(row["mode"] or Mode.STEP),
            policy=row["policy"] or "builtin", budget=row["budget"] or 0, runs_started=row["runs_started"] or 0,
            state=SessionState(row["state"] or SessionState.ACTIVE),
            wake_conditions=json.loads(row["wake_conditions"] or "[]"), base_commit=row["base_commit"],
            base_branch=row["base_branch"], noise_floor=row.get("noise_floor"), cost=row.get("cost") or 0.0,
            created=row["created"] or 0.0, pid=row.get("pid"), unsafe=bool(row.get("unsafe")),
            seeding=row.get("seeding"),
        )


@dataclass(frozen=True)
class Approval:
    id: int
    session_id: int | None
    experiment_id: int | None
    kind: ApprovalKind
    payload: dict[str, Any]
    state: ApprovalState
    who: str | None
    feedback: str | None
    created: float
    decided: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Approval:
        return cls(
            id=row["id"], session_id=row["session_id"], experiment_id=row["experiment_id"],
            kind=ApprovalKind(row["kind"]), payload=json.loads(row["payload"] or "{}"),
            state=ApprovalState(row["state"]), who=row["who"],
            feedback=row.get("feedback"), created=row["created"] or 0.0, decided=row["decided"],
        )


@dataclass(frozen=True)
class Job:
    id: int
    experiment_id: int
    run_dir: str
    pid: int | None
    pid_start: float | None
    wrapper_pid: int | None
    wrapper_start: float | None
    slot: str | None
    log_path: str
    state: JobState
    exit_code: int | None
    started: float | None  # when nightlab started it (local) or handed it to the scheduler
    ended: float | None
    backend: str | None = None  # None or "local": this machine; "slurm", "ray": a scheduler
    sched_id: str | None = None
    sched_name: str | None = None
    sched_state: str | None = None  # queued | running | ended | unknown, as the scheduler last said
    node: str | None = None
    run_started: float | None = None  # when the wrapper started on its node (after any time in the queue)
    ending: str | None = None  # the scheduler's account of the end when the wrapper left none (node_failure...)

    @property
    def remote(self) -> bool:
        return bool(self.backend) and self.backend != "local"

    @property
    def where(self) -> str:
        """Where it runs, for the status views: a local slot (`cpu0`), or `slurm 1234 on node7`, `ray nightlab-…`."""
        if not self.remote:
            return self.slot or ""
        return f"{self.backend} {self.sched_id or '(submitting)'}" + (f" on {self.node}" if self.node else "")

    @property
    def queued_s(self) -> float | None:
        """Seconds between submission and the wrapper starting (None while still queued or never queued)."""
        if self.run_started is None or self.started is None:
            return None
        return max(0.0, self.run_started - self.started)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        values["state"] = JobState(values["state"] or JobState.STARTING)
        return cls(**values)

    @property
    def wrapper(self) -> tuple[int, float] | None:
        """The wrapper process as its launcher saw it (never read back from a file the job could reach)."""
        return (int(self.wrapper_pid), float(self.wrapper_start or 0.0)) if self.wrapper_pid else None



__all__ = ["Approval", "Experiment", "Job", "Session"]
