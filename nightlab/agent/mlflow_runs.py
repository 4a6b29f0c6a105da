"""What a nightlab project looks like as MLflow runs: one parent run per session, one nested run per experiment.

Pure planning (no MLflow import): `plan_project` turns the store (and the experiments' commits, for their knobs) into
`RunPlan`s that `mlflow_sync` writes. Keeping the two apart means the mapping is the same for a one-off
`nightlab export mlflow` and for live logging, and can be tested without a tracking server.

Layout, chosen for how MLflow's UI shows it: one MLflow experiment per project (default `nightlab-<folder>`), because
one nightlab experiment tree spans many sessions (every `nightlab run` opens one) and MLflow compares runs within an
experiment; in it, a parent run per session (`session 3`) with that session's experiments nested under it
(`mlflow.parentRunId`), so the runs table groups them and a session's runs fold away.

Each experiment's run holds:
- params: the knobs whose values differ from the committed code (the baseline), with their values, so runs line up
  column by column; the `changed` tag names those this experiment itself changed (against its parent);
- metrics: the metric's curve under its own name (steps as read; its last value is the final metric), the value
  nightlab judged the run by (`nightlab.metric`: the reduced value for TensorBoard's min/max), the training loss
  read for diagnosis (`nightlab.train_loss`), the duration and the reward;
- tags: hypothesis, parent, status, seed, branch, commit, kind, stage, failure class; the rationale as the run's
  description; identity tags (`nightlab.project_id`, `nightlab.experiment_id`) that make a second export update the
  same runs instead of adding new ones;
- the diff against its parent as the artefact `diff.patch`.
Text leaving the machine goes through the same scrubbing as the trajectory export: no secrets, no absolute paths.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.states import Kind, SessionState, Status
from nightlab.agent.store import Experiment, Session, Store
from nightlab.agent.trajectories import scrub
from nightlab.agent.workspace import Workspace

TAG_PROJECT_ID = "nightlab.project_id"
TAG_KEY = "nightlab.key"  # "experiment:7" or "session:3": what a run stands for, so re-exports find it again
DIFF_ARTIFACT = "diff.patch"
_NAME_BAD = re.compile(r"[^\w./\- :]")  # MLflow accepts letters, digits, _ - . / space and : in metric and param keys

# experiment status -> MLflow run status
_RUN_STATUS: dict[str, str] = {
    Status.RUNNING: "RUNNING", Status.QUEUED: "SCHEDULED", Status.APPROVED: "SCHEDULED",
    Status.PROPOSED: "SCHEDULED", Status.SUCCEEDED: "FINISHED", Status.KEPT: "FINISHED",
    Status.UNCONFIRMED: "FINISHED", Status.DISCARDED: "FINISHED", Status.PROMOTED: "FINISHED",
    Status.FAILED: "FAILED", Status.TIMED_OUT: "FAILED", Status.LOST: "FAILED", Status.CANCELLED: "KILLED",
    Status.STOPPED_EARLY: "KILLED",
}
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


@dataclass
class RunPlan:
    """Everything one MLflow run should hold; `key` identifies it across exports."""

    key: str
    name: str
    parent_key: str | None
    status: str  # RUNNING | SCHEDULED | FINISHED | FAILED | KILLED
    start_ms: int
    end_ms: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # artefact path -> text
    version: str = ""  # what it was planned from (the store rows' update times): unchanged rows need no sync

    def fingerprint(self) -> str:
        data = [self.key, self.name, self.parent_key, self.status, self.start_ms, self.end_ms, self.tags, self.params,
                self.metrics, {k: hashlib.sha1(v.encode()).hexdigest() for k, v in self.artifacts.items()}]
        return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def project_id(root: Path) -> str:
    """A stable id for the project (its absolute path, hashed: the path itself never leaves the machine)."""
    return hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]


def default_experiment_name(root: Path) -> str:
    return f"nightlab-{Path(root).resolve().name}"


def clean_key(name: str) -> str:
    """A metric or param name MLflow accepts (other characters become `_`)."""
    return _NAME_BAD.sub("_", name)[:250] or "_"


def exported(e: Experiment, has_job: bool) -> bool:
    """Experiments that ran (or run, or wait to run again) become runs; proposals never launched do not."""
    return has_job or e.run_result is not None


class KnobReader:
    """Knob values of files at commits, cached: what params are made of."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._cache: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}

    def values(self, commit: str, paths: tuple[str, ...]) -> dict[str, Any]:
        key = (commit, paths)
        if key not in self._cache:
            from nightlab.agent.policy import knobs

            files = {p: t for p in paths if (t := self.ws.read_file(commit, p)) is not None}
            try:
                found = knobs.discover_files(files)
            except Exception:  # a file that does not parse: no knobs from it, the run is still exported
                found = []
            self._cache[key] = {k.name: k.value for k in found}
        return self._cache[key]

    def changed(self, before: str, after: str) -> dict[str, Any]:
        """Knobs whose value differs between two commits (only files the commits differ in are read)."""
        if not before or not after or before == after:
            return {}
        try:
            paths = tuple(sorted(self.ws.changed_files(before, after)))
        except Exception:
            return {}
        old, new = self.values(before, paths), self.values(after, paths)
        return {k: v for k, v in new.items() if old.get(k) != v}


def _ms(t: float | None) -> int | None:
    return int(t * 1000) if t else None


def _points(curve: list[list[float]] | list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(int(p[0]), float(p[1])) for p in curve if len(p) >= 2 and math.isfinite(float(p[1]))]


def _value(v: Any) -> str:
    return str(v)[:500]


def _session_plan(s: Session, store: Store, pid: str, root: Path) -> RunPlan:
    done = s.state == SessionState.DONE
    tags = {TAG_PROJECT_ID: pid, TAG_KEY: f"session:{s.id}", "nightlab.project": Path(root).name,
            "nightlab.session": str(s.id), "nightlab.kind": "session", "mode": str(s.mode), "policy": str(s.policy),
            "state": str(s.state), "budget": str(s.budget), "runs_started": str(s.runs_started)}
    if s.base_branch:
        tags["mlflow.source.git.branch"] = s.base_branch
    if s.base_commit:
        tags["mlflow.source.git.commit"] = s.base_commit
    metrics: dict[str, list[tuple[int, float]]] = {}
    if s.noise_floor:
        metrics["nightlab.noise_floor"] = [(0, float(s.noise_floor))]
    if s.cost:
        metrics["nightlab.llm_cost_usd"] = [(0, float(s.cost))]
    version = json.dumps([s.state, s.runs_started, s.noise_floor, s.cost, s.mode])
    return RunPlan(key=f"session:{s.id}", name=f"session {s.id}", parent_key=None,
                   status="FINISHED" if done else "RUNNING", start_ms=_ms(s.created) or 0,
                   end_ms=None, tags=tags, metrics=metrics, version=version)


def _experiment_plan(e: Experiment, cfg: ProjectConfig, root: Path, pid: str, base_commit: str | None,
                     parent: Experiment | None, knobs: KnobReader, job_times: tuple[float | None, float | None]
                     ) -> RunPlan:
    status = _RUN_STATUS.get(e.status, "FINISHED")
    title = scrub(e.title or f"experiment {e.id}", root)
    tags = {
        TAG_PROJECT_ID: pid, TAG_KEY: f"experiment:{e.id}", "nightlab.project": Path(root).name,
        "nightlab.experiment_id": str(e.id), "nightlab.session": str(e.session_id or ""),
        "hypothesis": title[:5000], "parent": str(e.parent_id) if e.parent_id is not None else "",
        "status": str(e.status), "seed": str(e.seed), "branch": e.branch or "", "kind": str(e.kind),
    }
    if e.commit_sha:
        tags["commit"] = e.commit_sha
        tags["mlflow.source.git.commit"] = e.commit_sha
    if e.branch:
        tags["mlflow.source.git.branch"] = e.branch
    for k, v in (("stage", e.stage), ("failure_class", e.failure_class), ("policy", e.policy)):
        if v:
            tags[k] = str(v)
    if e.kind == Kind.RERUN and e.rerun_of is not None:
        tags["rerun_of"] = str(e.rerun_of)
    note = "\n\n".join(x for x in (e.title, e.rationale, e.diagnosis or e.error or "") if x)
    tags["mlflow.note.content"] = scrub(note, root)[:20000]
    params: dict[str, str] = {}
    if e.commit_sha and base_commit:
        params = {clean_key(k): _value(v) for k, v in knobs.changed(base_commit, e.commit_sha).items()}
        if parent is not None and parent.commit_sha:
            mine = knobs.changed(parent.commit_sha, e.commit_sha)
            tags["changed"] = ", ".join(sorted(mine))[:5000]
    metrics: dict[str, list[tuple[int, float]]] = {}
    curve = _points(e.curve)
    if curve:
        metrics[clean_key(cfg.metric.name)] = curve
    if e.metric is not None and math.isfinite(e.metric):
        metrics.setdefault(clean_key(cfg.metric.name), [(0, float(e.metric))])
        metrics["nightlab.metric"] = [(curve[-1][0] if curve else 0, float(e.metric))]
    loss = _points(e.loss_curve)
    if loss:
        metrics["nightlab.train_loss"] = loss
    if e.seconds is not None:
        metrics["nightlab.seconds"] = [(0, float(e.seconds))]
    if e.reward is not None:
        metrics["nightlab.reward"] = [(0, float(e.reward))]
    artifacts = {DIFF_ARTIFACT: scrub(e.patch, root)} if e.patch else {}
    started, ended = job_times
    start = _ms(started) or _ms(e.created) or 0
    end = (_ms(ended) or _ms(e.updated)) if status in TERMINAL else None
    return RunPlan(key=f"experiment:{e.id}", name=f"#{e.id} {title}"[:200],
                   parent_key=f"session:{e.session_id}" if e.session_id else None, status=status, start_ms=start,
                   end_ms=end, tags=tags, params=params, metrics=metrics, artifacts=artifacts,
                   version=f"{e.updated}:{ended}")


def plan_project(root: Path, cfg: ProjectConfig, store: Store, *, only: set[str] | None = None,
                 versions: dict[str, str] | None = None, ws: Workspace | None = None) -> list[RunPlan]:
    """The runs of the whole project, sessions first. `versions` (key -> RunPlan.version last synced) skips the
    experiments that have not changed since, before their knobs are read; `only` limits to these keys."""
    root = Path(root).resolve()
    pid = project_id(root)
    ws = ws or Workspace(root)
    knobs = KnobReader(ws)
    exps = store.experiments()
    by_id = {e.id: e for e in exps}
    jobs: dict[int, tuple[float | None, float | None]] = {}
    for j in store.jobs():
        first = jobs.get(j.experiment_id)
        jobs[j.experiment_id] = (first[0] if first else j.started, j.ended)

    def base_commit(e: Experiment) -> str | None:
        seen: set[int] = set()
        cur = e
        while cur.parent_id is not None and cur.parent_id in by_id and cur.id not in seen:
            seen.add(cur.id)
            cur = by_id[cur.parent_id]
        return cur.commit_sha

    plans: list[RunPlan] = []
    sessions = sorted({e.session_id for e in exps if e.session_id is not None})
    for sid in sessions:
        try:
            s = store.session(sid)
        except KeyError:
            continue
        plans.append(_session_plan(s, store, pid, root))
    for e in exps:
        if not exported(e, e.id in jobs):
            continue
        key = f"experiment:{e.id}"
        if only is not None and key not in only:
            continue
        ended = jobs.get(e.id, (None, None))[1]
        if versions is not None and versions.get(key) == f"{e.updated}:{ended}":
            continue
        parent = by_id.get(e.parent_id) if e.parent_id is not None else None
        plans.append(_experiment_plan(e, cfg, root, pid, base_commit(e), parent, knobs, jobs.get(e.id, (None, None))))
    if only is not None:
        plans = [p for p in plans if p.key in only or p.key.startswith("session:")]
    return plans
