"""Promote = review the experiment's whole change against the user's branch, then commit it there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nightlab.agent import artifacts
from nightlab.agent.store import Experiment, Store
from nightlab.agent.workspace import STATE_DIR, Workspace
from nightlab.errors import NightlabError
from nightlab.sandbox.watch import signal_project


@dataclass
class Preview:
    diff: str
    stat: str
    branch: str
    files: list[str]
    base: str
    artifacts: artifacts.Artifacts | None = None  # the files the run wrote (they stay there; promote copies none)


def chain_base(store: Store, e: Experiment) -> str | None:
    """The commit the experiment's chain of parents started from (the baseline's commit)."""
    cur = e
    while cur.parent_id is not None:
        nxt = store.find_experiment(cur.parent_id)
        if nxt is None:
            break
        cur = nxt
    return cur.commit_sha


def promote_preview(root: Path, store: Store, e: Experiment) -> Preview:
    if e.status == "promoted":
        raise NightlabError(f"experiment #{e.id} is already promoted")
    if not e.commit_sha:
        raise NightlabError(f"experiment #{e.id} has no commit to promote ({e.status})")
    if e.run_result != "succeeded" and e.kind != "baseline":
        raise NightlabError(f"experiment #{e.id} did not succeed ({e.run_result or e.status}); only a working "
                            "result can be promoted")
    ws = Workspace(root)
    base = chain_base(store, e) or ws.head_commit()
    patch, files = ws.promote_check(base, e.commit_sha)
    kept = artifacts.read(Path(root) / STATE_DIR, e.id)
    return Preview(diff=patch, stat=ws.diff_stat(base, e.commit_sha).summary(),
                   branch=ws.current_branch() or "HEAD", files=files, base=base,
                   artifacts=kept)


def promote_experiment(root: Path, store: Store, e: Experiment, who: str) -> str:
    """Commit the change onto the user's branch (squashed, the hypothesis as message). Returns the new commit."""
    pv = promote_preview(root, store, e)
    ws = Workspace(root)
    message = e.title.strip()
    if e.rationale.strip():
        message += "\n\n" + e.rationale.strip()
    session = store.latest_session()
    message += f"\n\nPromoted from nightlab experiment #{e.id} ({e.branch}).\n"
    message += "Co-authored-by: nightlab <nightlab@localhost>\n"
    sha = ws.promote(pv.base, e.commit_sha or "", message)
    store.update_experiment(e.id, status="promoted")
    for a in store.approvals("pending"):
        if a.experiment_id == e.id and a.kind == "promote":
            store.decide(a.id, "approved", who)
    store.event("promoted", f"#{e.id} promoted onto {pv.branch} as {sha[:10]}", experiment_id=e.id,
                session_id=session.id if session else None, data={"commit": sha})
    signal_project(Path(root) / ".nightlab")
    return sha
