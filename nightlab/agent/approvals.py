"""Answering approvals from any process (CLI in another shell, the TUI): record the decision, wake the engine."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.store import Approval, Store
from nightlab.errors import NightlabError
from nightlab.sandbox.watch import signal_project


def pending_for(store: Store, exp_id: int, kind: str | None = None) -> Approval | None:
    for a in store.approvals("pending"):
        if a.experiment_id == exp_id and (kind is None or a.kind == kind):
            return a
    return None


def decide_for_experiment(root: Path, store: Store, exp_id: int, state: str, who: str,
                          feedback: str | None = None) -> Approval:
    """Approve or reject the pending hypothesis approval of an experiment, then wake whoever waits on it."""
    appr = pending_for(store, exp_id, "hypothesis")
    if appr is None:
        e = store.find_experiment(exp_id)
        status = e.status if e else "unknown"
        raise NightlabError(f"experiment #{exp_id} has no pending approval (it is {status})")
    if not store.decide(appr.id, state, who, feedback):
        raise NightlabError(f"approval for #{exp_id} was already decided")
    signal_project(Path(root) / ".nightlab")
    _wake_if_idle(Path(root))
    return store.approval(appr.id)


def decide_approval(root: Path, store: Store, aid: int, state: str, who: str,
                    feedback: str | None = None) -> Approval:
    """Resolve any pending approval by its id (hypothesis, launch, budget, promote), then wake whoever waits."""
    if not store.decide(aid, state, who, feedback):
        raise NightlabError(f"approval {aid} is not pending (already decided)")
    signal_project(Path(root) / ".nightlab")
    _wake_if_idle(Path(root))
    return store.approval(aid)


def decide_budget(root: Path, store: Store, state: str, who: str, feedback: str | None = None) -> Approval:
    """Extend (approve) or refuse (reject) the model cost budget the engine is waiting on."""
    pending = [a for a in store.approvals("pending") if a.kind == "budget"]
    if not pending:
        raise NightlabError("no budget extension is waiting for approval")
    appr = pending[-1]
    store.decide(appr.id, state, who, feedback)
    signal_project(Path(root) / ".nightlab")
    _wake_if_idle(Path(root))
    return store.approval(appr.id)


def _wake_if_idle(root: Path) -> None:
    """An approval given while no engine runs (it hibernated) starts one, as a finished job would."""
    import subprocess
    import sys

    from nightlab.agent.lock import ProjectLock

    if ProjectLock(root / ".nightlab").is_held():
        return
    subprocess.Popen([sys.executable, "-m", "nightlab", "wake", "--quiet", str(root)], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
