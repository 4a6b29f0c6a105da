"""A session's decision steps: each decision the policy makes, recorded as it saw it, and its reward when the run
it led to settles — handed back to a policy that learns while the session runs.

What a step holds, and where it is kept (the project's store, the user's experience store), is experience.py's; how
a settled run is scored is reward.py's. This room is the engine's side of that loop: it records the policy's last
decision right after the policy is asked (what it was shown, the experiment admitted, the failure it fixed), gives a
settled run its reward from the ledger (the baseline, the best before it, the noise floor), settles the step, and
hands it to the policy's `observe`; a resumed session replays its settled steps to the policy. None of it may stop
the session: a step that cannot be recorded, an experience store that cannot be written (said once) or a learner's
failed update is an event, and the session goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nightlab.agent import early_stop, experience, reward, sessions
from nightlab.agent.config import ProjectConfig
from nightlab.agent.ledger import Ledger
from nightlab.agent.policy.base import Policy
from nightlab.agent.proposal import ExperimentView, PolicyContext
from nightlab.agent.states import EventKind, Kind, RunResult
from nightlab.agent.store import Experiment, Store

__all__ = ["DecisionSteps"]


class DecisionSteps:
    """The decision steps of the session `sid()` names, for the policy `policy()` returns."""

    def __init__(self, store: Store, root: Path, cfg: ProjectConfig, ledger: Ledger, sid: Callable[[], int],
                 policy: Callable[[], Policy], emit: Callable[..., Any]) -> None:
        self.store, self.root, self.cfg, self.ledger = store, root, cfg, ledger
        self.sid, self.policy, self.emit = sid, policy, emit
        self._warned = False  # a user experience store that cannot be written is said once

    def record(self, ctx: PolicyContext, made: Experiment | None, failed: ExperimentView | None) -> None:
        """Record the decision the policy just made, as it saw it (experience.py); never fails the step."""
        policy = self.policy()
        decision, policy.last_decision = policy.last_decision, None
        try:
            _, problem = experience.record(
                self.store, self.root, session_id=self.sid(), experiment=made, policy=policy.name,
                decision=decision, ctx=ctx, failed=failed, share=self.cfg.experience.share,
                context_chars=self.cfg.llm.context_chars)
        except Exception as err:  # the experiment goes on without its record; say so
            self.emit(EventKind.EXPERIENCE_ERROR, f"could not record the decision step: {sessions.one_line(err)}")
            return
        self._problem(problem)

    def reward(self, exp_id: int) -> None:
        """A settled run's reward (reward.py, from the ledger as it stands), on its row and, but for a re-run, on
        the decision step that made it, which the policy then observes."""
        e = self.store.experiment(exp_id)
        base = self.ledger.baseline()
        base_val = self.ledger.score(base.id) if base else None
        _, best_val = self.ledger.best(exclude=e.id if e.kind != Kind.RERUN else e.rerun_of)
        x = reward.RewardInput(
            stage=e.stage or "", metric=e.metric, baseline=base_val, best_before=best_val,
            goal=self.cfg.metric.goal, noise_floor=self.ledger.noise_floor(), failure_class=e.failure_class,
            seconds=e.seconds or 0.0, timeout_s=self.cfg.timeout,
            behind=early_stop.behind(self.store, e.id) if e.run_result == RunResult.STOPPED_EARLY else None,
        )
        parts = reward.explain(x)
        self.store.update_experiment(exp_id, reward=round(parts["reward"], 4))
        if e.kind == Kind.RERUN:
            return
        step = experience.settle(self.store, self.root, self.store.experiment(exp_id), parts,
                                 self.cfg.experience.share)
        if step is not None:
            self._problem(step.get("problem"))
            self._observe(step)

    def replay(self) -> None:
        """A learner resumed after hibernation sees again the rewards this session has had (idempotent per process)."""
        for step in experience.session_steps(self.store, self.sid()):
            self._observe(step)

    def _problem(self, problem: str | None) -> None:
        if problem and not self._warned:
            self._warned = True
            self.emit(EventKind.EXPERIENCE_ERROR, problem)

    def _observe(self, step: dict[str, Any]) -> None:
        """Hand a settled step's reward to a policy that learns within the session (the learned policy)."""
        try:
            self.policy().observe(step)
        except Exception as err:  # a learner's trouble never stops the session
            self.emit(EventKind.POLICY_ERROR, f"online update failed: {sessions.one_line(err)}")
