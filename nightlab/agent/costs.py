"""The model-cost budget of a session (`llm.max_cost`): what the policy's model calls spent, and whether it may
spend more — reaching the limit asks a human (a `budget` approval) for an extension of another `max_cost`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.states import ApprovalKind, ApprovalState, EventKind
from nightlab.agent.store import Store

if TYPE_CHECKING:
    from nightlab.agent.policy.base import Policy


class Spending(StrEnum):
    """The answer to "may the policy call its model now?"."""

    OK = "ok"
    ASKED = "asked"  # the limit was reached just now: an extension has been asked for
    WAITING = "waiting"  # an extension was asked for and is not decided yet
    REFUSED = "refused"  # the extension was refused: no more model calls this session


class CostBudget:
    def __init__(self, store: Store, cfg: ProjectConfig) -> None:
        self.store = store
        self.cfg = cfg
        self._refusal_said = False

    def account(self, session_id: int, policy: Policy) -> None:
        """Add what the policy's last call spent (failed calls included) to the session's cost; its tally restarts."""
        self.add(session_id, policy.last_usage)
        policy.last_usage = {}

    def may_call(self, session_id: int, emit: Callable[..., Any], notify: Callable[[str], None],
                 exhaust: Callable[[], None]) -> bool:
        """Whether the policy may call its model now; False while the budget is spent: the extension is asked for
        (once, said and notified) and waited for; a refused extension ends the session's planning (`exhaust`)."""
        spending = self.check(session_id)
        if spending == Spending.OK:
            return True
        spent = self.spent(session_id)
        if spending == Spending.REFUSED:
            if not self._refusal_said:
                self._refusal_said = True
                emit(EventKind.EXHAUSTED, f"model cost budget spent (${spent:.2f}); extension refused")
            exhaust()
        elif spending == Spending.ASKED:
            emit(EventKind.BUDGET, f"model cost ${spent:.2f} reached the budget ${self.limit(session_id):.2f}: "
                                   "waiting for approval to extend it")
            notify(f"nightlab: model cost budget reached (${spent:.2f}); approve an extension to go on")
        return False

    def add(self, session_id: int, usage: dict[str, Any]) -> None:
        """Add what one policy call spent (failed calls included) to the session's cost."""
        cost = float(usage.get("cost") or 0.0)
        if cost:
            self.store.add_cost(session_id, cost)

    def limit(self, session_id: int) -> float:
        """max_cost, extended by max_cost again for every approved budget extension in this session."""
        extensions = [a for a in self.store.approvals_of(kind=ApprovalKind.BUDGET, session_id=session_id)
                      if a.state == ApprovalState.APPROVED]
        return self.cfg.llm.max_cost * (1 + len(extensions))

    def spent(self, session_id: int) -> float:
        return self.store.session(session_id).cost

    def check(self, session_id: int) -> Spending:
        """Whether the policy may call its model; at the limit, asks (once) for an extension."""
        if self.cfg.search.policy != "llm" or self.cfg.llm.max_cost <= 0:
            return Spending.OK
        spent = self.spent(session_id)
        if spent < self.limit(session_id):
            return Spending.OK
        mine = self.store.approvals_of(kind=ApprovalKind.BUDGET, session_id=session_id)
        if mine and mine[-1].state == ApprovalState.REJECTED:
            return Spending.REFUSED
        if mine and mine[-1].state == ApprovalState.PENDING:
            return Spending.WAITING
        self.store.add_approval(ApprovalKind.BUDGET, {"spent": spent, "limit": self.limit(session_id),
                                                      "extend_by": self.cfg.llm.max_cost}, session_id, None)
        return Spending.ASKED


__all__ = ["CostBudget", "Spending"]
