"""The policy interface: where hypotheses and edits come from.

A policy sees a read-only `PolicyContext` (the project, the experiment tree with results, the brief) and returns a
`Proposal`: a hypothesis plus the file edits that test it (those types live in agent/proposal.py and are re-exported
here). Edits are exact search/replace blocks against the parent experiment's files; the engine validates and
applies them, so every policy shares one edit path.
"""

from __future__ import annotations

from typing import Any, Protocol

from nightlab.agent.policy.decision import Decision
from nightlab.agent.proposal import Edit, ExperimentView, PolicyContext, Proposal

__all__ = ["Abandon", "Edit", "ExperimentView", "Policy", "PolicyBase", "PolicyContext", "Proposal"]


class Abandon(Exception):
    """Raised by `Policy.fix` when no code change can repair the run (a package that cannot be installed offline, a
    file nightlab must not trust); the message says why, and the engine records it with the stopped branch."""


class Policy(Protocol):
    """Every hook the engine calls. `PolicyBase` gives the optional ones a default."""

    name: str
    # what the latest propose/fix call spent on model calls, failed calls included ({"cost": usd, ...}); the engine
    # adds it to the session's cost after every call and then replaces it with {}
    last_usage: dict[str, Any]
    # the decision step the latest propose/fix call made (the state it saw, the moves it weighed, the one it took:
    # policy/decision.py), None when it left none; the engine records it in the experience store and sets it back
    last_decision: Decision | None
    # the candidates the latest propose/fix call skipped because they could not end in the time left
    # (`PolicyContext.time_left_s`): (title, predicted run seconds); the engine says them and, when nothing else was
    # proposed, ends the session once nothing runs
    unfit: tuple[tuple[str, float], ...]

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        """The next hypothesis to test, or None when the policy has nothing left to try."""

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        """An edit that should make the failed run work, or None to abandon that branch (raise `Abandon` to say
        why no fix can work)."""

    def prewarm(self) -> None:
        """Start slow set-up early (called once when the engine starts, before the baseline runs)."""

    def observe(self, step: dict[str, Any]) -> None:
        """A settled decision step of this session with its reward (experience.py's row): a policy that learns
        while the session runs updates on it (the learned policy). Called when a run settles, and again for the
        session's settled steps when it resumes; a policy that does not learn ignores it."""


class PolicyBase:
    """Defaults for the hooks a policy need not use: nothing to set up early, no model calls to account for, no
    decision record of its own (the engine records the state it was shown), nothing learned from rewards."""

    name = "policy"
    last_usage: dict[str, Any] = {}  # replaced (never mutated) by the engine and by policies that call a model
    last_decision: Decision | None = None
    unfit: tuple[tuple[str, float], ...] = ()

    def prewarm(self) -> None:
        return None

    def observe(self, step: dict[str, Any]) -> None:
        return None
