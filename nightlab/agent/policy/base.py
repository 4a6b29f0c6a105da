"""The policy interface: where hypotheses and edits come from.

A policy sees a read-only `PolicyContext` (the project, the experiment tree with results, the brief) and returns a
`Proposal`: a hypothesis plus the file edits that test it (those types live in agent/proposal.py and are re-exported
here). Edits are exact search/replace blocks against the parent experiment's files; the engine validates and
applies them, so every policy shares one edit path.
"""

from __future__ import annotations

from typing import Any, Protocol

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

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        """The next hypothesis to test, or None when the policy has nothing left to try."""

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        """An edit that should make the failed run work, or None to abandon that branch (raise `Abandon` to say
        why no fix can work)."""

    def prewarm(self) -> None:
        """Start slow set-up early (called once when the engine starts, before the baseline runs)."""


class PolicyBase:
    """Defaults for the hooks a policy need not use: nothing to set up early, no model calls to account for."""

    name = "policy"
    last_usage: dict[str, Any] = {}  # replaced (never mutated) by the engine and by policies that call a model

    def prewarm(self) -> None:
        return None
