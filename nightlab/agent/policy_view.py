"""What a policy is shown: each experiment as a read-only `ExperimentView`, and the whole project as a
`PolicyContext` (the tree with its results, the best, the noise floor, the files it may edit, the brief).

Built fresh for every call from the store and the repository, so a policy never holds state the engine does not.
"""

from __future__ import annotations

import random
from pathlib import Path

from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import matches_any
from nightlab.agent.ledger import Ledger
from nightlab.agent.proposal import ExperimentView, PolicyContext
from nightlab.agent.states import ApprovalKind, ApprovalState
from nightlab.agent.store import Experiment
from nightlab.agent.workspace import Workspace


def view(e: Experiment) -> ExperimentView:
    """An experiment as a policy may see it (never the raw log beyond its tail)."""
    return ExperimentView(
        id=e.id, parent_id=e.parent_id, title=e.title, kind=e.kind, status=e.status, run_result=e.run_result,
        metric=e.metric, curve=[(int(p[0]), float(p[1])) for p in e.curve],
        loss_curve=[(int(p[0]), float(p[1])) for p in e.loss_curve], knobs=dict(e.knobs),
        failure_class=e.failure_class, diagnosis=e.diagnosis or e.error, log_tail=e.log_tail or "",
        seed=e.seed, seconds=e.seconds, stage=e.stage, command=e.command or "", fixed_s=e.fixed_s,
    )


def build_context(root: Path, cfg: ProjectConfig, ws: Workspace, ledger: Ledger, runs_left: int,
                  gpus_per_job: int = 0) -> PolicyContext:
    """The project as the policy sees it now. Files are read from the experiments' commits, never the user's tree;
    `gpus_per_job` is what a job is given on this machine ("auto" resolved)."""
    exps = ledger.store.experiments()
    best_id, _ = ledger.best()
    commits = {e.id: e.commit_sha for e in exps}
    base = ledger.baseline()
    base_commit = (base.commit_sha if base else None) or ws.head_commit()

    def read_file(exp_id: int | None, path: str) -> str:
        sha = commits.get(exp_id) if exp_id is not None else None
        text = ws.read_file(sha or base_commit, path)
        return text if text is not None else ""

    brief = ""
    if cfg.brief:
        bp = Path(root) / cfg.brief
        brief = bp.read_text() if bp.is_file() else ""
    tracked = ws.tracked_files(base_commit)
    # a person's rejection is a decided hypothesis approval; the engine's refusals have none
    by_user = {a.experiment_id: a.feedback or "" for a in ledger.store.approvals(ApprovalState.REJECTED)
               if a.kind == ApprovalKind.HYPOTHESIS and a.experiment_id is not None}
    return PolicyContext(
        root=str(root), metric=cfg.metric.name, goal=cfg.metric.goal,
        editable=editable_files(ws, cfg, base_commit, tracked), protected=list(cfg.protected),
        experiments=[view(e) for e in exps], best_id=best_id, baseline_id=base.id if base else None,
        noise_floor=ledger.noise_floor(), brief=brief, timeout_s=cfg.timeout, runs_left=runs_left,
        read_file=read_file, rng=random.Random(f"{cfg.search.seed}:{len(exps)}"),
        debug_depth=cfg.search.debug_depth, command=cfg.command, tracked=tracked, gpus_per_job=gpus_per_job,
        rejected_by_user=by_user,
        link_in_path=lambda exp_id, path: ws.link_in_path(
            (commits.get(exp_id) if exp_id is not None else None) or base_commit, path),
    )


def editable_files(ws: Workspace, cfg: ProjectConfig, commit: str, tracked: list[str] | None = None) -> list[str]:
    """The files at `commit` the policy may edit: `editable`, minus anything `protected`, minus symbolic links
    (an edit through a link is refused: it would change a file outside the worktree, or another than named)."""
    links = ws.tracked_links(commit)
    return [f for f in (ws.tracked_files(commit) if tracked is None else tracked)
            if matches_any(f, cfg.editable) and not matches_any(f, cfg.protected) and f not in links]


__all__ = ["build_context", "editable_files", "view"]
