"""Answering approvals: moved to the front desk (`actions.FrontDesk.approve / reject / decide / decide_budget`).

These functions keep the old names importable for code written before the desk; each one asks the desk.
"""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.actions import FrontDesk
from nightlab.agent.states import ApprovalKind, ApprovalState
from nightlab.agent.store import Approval, Store


def pending_for(store: Store, exp_id: int, kind: str | None = None) -> Approval | None:
    return store.pending_approval(kind=ApprovalKind(kind) if kind else None, experiment_id=exp_id)


def decide_for_experiment(root: Path, store: Store, exp_id: int, state: str, who: str,
                          feedback: str | None = None) -> Approval:
    desk = FrontDesk(root, store=store, who=who)
    return desk.approve(exp_id) if state == ApprovalState.APPROVED else desk.reject(exp_id, feedback)


def decide_approval(root: Path, store: Store, aid: int, state: str, who: str,
                    feedback: str | None = None) -> Approval:
    return FrontDesk(root, store=store, who=who).decide(store.approval(aid), ApprovalState(state), feedback)


def decide_budget(root: Path, store: Store, state: str, who: str, feedback: str | None = None) -> Approval:
    return FrontDesk(root, store=store, who=who).decide_budget(ApprovalState(state), feedback)
