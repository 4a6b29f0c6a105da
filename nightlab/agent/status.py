"""What `nightlab status` (and its --json) reports: session state, baseline, best, experiments, jobs, approvals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nightlab.agent import artifacts
from nightlab.agent.config import ProjectConfig
from nightlab.agent.ledger import summarize
from nightlab.agent.lock import ProjectLock
from nightlab.agent.paths import StatePaths
from nightlab.agent.report import existing_report
from nightlab.agent.states import ApprovalState, SessionState, Status
from nightlab.agent.store import Session, Store
from nightlab.sandbox import isolate, runner
from nightlab.sandbox.backends import SchedState


def gpu_state(root: Path, jobs: list[tuple[str | None, int]]) -> list[dict[str, Any]]:
    """Each GPU's utilisation and memory (NVML) and who holds it: the experiment, from (slot, experiment) of this
    project's running jobs, or another project, from the machine-wide leases; [] without an NVIDIA GPU or NVML."""
    from nightlab.sandbox import gpustats

    gpus = gpustats.read_gpus()
    if not gpus:
        return []
    own = gpustats.holders(jobs)
    elsewhere = gpustats.leased_elsewhere(root)
    return [g.as_dict(own.get(g.index), gpustats.holder_label(g.index, own, elsewhere)) for g in gpus]


def mlflow_state(root: Path, cfg: ProjectConfig) -> dict[str, Any] | None:
    """Live MLflow logging: where to, when it last succeeded, and its last error (None when not configured)."""
    if not cfg.mlflow.tracking_uri:
        return None
    from nightlab.agent import mlflow_sync

    state = mlflow_sync.read_state(root)
    uri = mlflow_sync.redact(mlflow_sync.resolve_uri(cfg.mlflow.tracking_uri, root))
    return {"uri": uri, "synced_at": state.get("synced_at"), "error": state.get("error"),
            "experiment": state.get("experiment")}


def status_data(root: Path, cfg: ProjectConfig, store: Store) -> dict[str, Any]:
    session = store.latest_session()
    summary = summarize(store, cfg, session)
    exps = {e.id: e for e in store.experiments()}
    paths = StatePaths.of(root)
    awake = ProjectLock(paths.dir).is_held()
    asleep = session is not None and session.state == SessionState.HIBERNATING
    jobs = []
    for j in store.open_jobs():
        e = exps.get(j.experiment_id)
        queued = j.remote and j.run_started is None
        since = j.started if not j.remote else (j.run_started or j.started)
        jobs.append({
            "experiment": j.experiment_id, "title": e.title if e else "", "slot": j.slot, "where": j.where,
            "backend": j.backend or "local", "state": Status.QUEUED if queued else Status.RUNNING,
            # time in the scheduler's queue and time running are counted apart
            "queued_s": round(time.time() - (j.started or time.time()), 1) if queued else j.queued_s,
            "running_s": 0.0 if queued else round(time.time() - (since or time.time()), 1), "log": j.log_path,
            "last_line": runner.last_log_line(j.run_dir),
            "alive": j.sched_state in (SchedState.QUEUED, SchedState.RUNNING, None) if j.remote
            else runner.wrapper_alive(j.run_dir, j.wrapper),
        })
    stored = artifacts.read_all(paths.dir)
    latest = {j.experiment_id: j for j in store.jobs()}
    experiments = []
    for r in summary.rows:
        e = exps[r["id"]]
        experiments.append({
            "id": e.id, "parent": e.parent_id, "status": e.status, "kind": e.kind, "metric": r["metric"],
            "runs": r["runs"], "delta": r["delta"], "hypothesis": e.title, "rationale": e.rationale,
            "stage": e.stage, "reward": e.reward, "failure_class": e.failure_class, "diagnosis": e.diagnosis,
            "queued_s": latest[e.id].queued_s if e.id in latest else None,
            "where": latest[e.id].where if e.id in latest else None,
            "seconds": e.seconds,
            "seed": e.seed, "isolation": e.isolation, "branch": e.branch, "error": e.error, "usage": e.usage,
            "command": e.command,
            "artifacts": stored[e.id].to_json() | {"summary": stored[e.id].describe()} if e.id in stored else None,
        })
    ran = [e for e in exps.values() if e.isolation]
    return {
        "sandbox_gaps": isolate.gaps(ran[-1].isolation) if ran else [],
        "project": str(root),
        "metric": cfg.metric.name,
        "goal": cfg.metric.goal,
        "session": None if session is None else {
            "id": session.id, "mode": session.mode, "state": session.state,
            "engine": "awake" if awake else ("hibernating" if asleep else "not running"),
            "budget": session.budget, "runs_started": session.runs_started,
            "budget_left": max(0, session.budget - session.runs_started), "wake_conditions": session.wake_conditions,
            "noise_floor": session.noise_floor, "cost": session.cost, "policy": session.policy,
            "seeding": session.seeding,
        },
        "baseline": summary.baseline,
        "best": None if summary.best_id is None else {"id": summary.best_id, "metric": summary.best},
        "experiments": experiments,
        "jobs": jobs,
        "approvals": [{"id": a.id, "kind": a.kind, "experiment": a.experiment_id, "payload": a.payload}
                      for a in store.approvals(ApprovalState.PENDING)],
        "gpus": gpu_state(root, [(j.slot, j.experiment_id) for j in store.open_jobs()]),
        "mlflow": mlflow_state(root, cfg),
        "report": _report(root, session),
    }


def _report(root: Path, session: Session | None) -> str | None:
    """The latest session's report, once written (when the session ended, or by `nightlab report`)."""
    path = existing_report(root, session.id) if session is not None else None
    return str(path) if path is not None else None
