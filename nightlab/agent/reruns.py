"""Re-runs of an experiment with another seed: the baseline's noise runs and a candidate's confirmation.

How a re-run gets another seed is seeding.py's (a flag, an environment variable, a literal in the code, or nothing to
vary); this room turns that plan into queued experiments — a row per re-run, and a commit of its own where the seed
is a literal in the code — and says which command a run is started with. The engine decides when a re-run is
wanted (verdict.py weighs whether a better run earns one); what a re-run is, is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nightlab.agent.config import ProjectConfig
from nightlab.agent.ledger import Ledger
from nightlab.agent.seeding import SeedPlan, SeedRoute, plan_seeding
from nightlab.agent.states import EventKind, Kind, Status
from nightlab.agent.store import Experiment, Store
from nightlab.agent.workspace import Workspace
from nightlab.errors import GitError

__all__ = ["Reruns"]


class Reruns:
    """The project's seeding plan (cached) and the re-runs queued with it, for the session `sid()` names."""

    def __init__(self, store: Store, ws: Workspace, cfg: ProjectConfig, ledger: Ledger, sid: Callable[[], int],
                 budget_left: Callable[[], int], emit: Callable[..., Any]) -> None:
        self.store, self.ws, self.cfg, self.ledger = store, ws, cfg, ledger
        self.sid, self.budget_left, self.emit = sid, budget_left, emit
        self._plan: SeedPlan | None = None
        self._unreadable: set[str] = set()  # commits whose files could not be read, said once each

    @property
    def seeded(self) -> bool:
        """Whether re-runs can vary the seed (see agent/seeding.py), or — where nothing can be varied — a plain
        re-run of the baseline came out different (the program draws entropy), so re-runs still measure noise.
        (A baseline whose seeds happen to agree is still confirmed on another seed: a change such as more dropout
        can make the seed matter.)"""
        return self.seed_plan().varies or self.ledger.deterministic() is False

    def seed_plan(self, e: Experiment | None = None) -> SeedPlan:
        """How re-runs get another seed: for the project (cached), or on experiment `e`'s own commit and command."""
        if e is None and self._plan is not None:
            return self._plan
        base = self.ledger.baseline()
        commit = (e.commit_sha if e is not None else None) or (base.commit_sha if base else None) \
            or self.ws.head_commit()
        command = (e.command if e is not None else None) or self.cfg.command
        try:
            tracked = self.ws.tracked_files(commit)
        except GitError as err:
            # its commit is gone or damaged: the plan is the command's alone (not kept; the commit's own launch
            # fails with the reason), and nothing stops the session
            if str(err) not in self._unreadable:
                self._unreadable.add(str(err))
                self.emit(EventKind.NOTE, f"seeding read from the command alone: {err}",
                          e.id if e is not None else None)
            return plan_seeding(command, lambda p: "", lambda p: False, [], self.cfg.metric.name)
        known = set(tracked)
        plan = plan_seeding(command, lambda p: self.ws.read_file(commit, p) or "", lambda p: p in known, tracked,
                            self.cfg.metric.name, self.cfg.protected)
        if e is None:
            self._plan = plan
        return plan

    def command_for(self, e: Experiment) -> str:
        """The shell command experiment `e` runs: its own command (or the project's) with its seed applied."""
        return self.seed_plan().command(e.command or self.cfg.command, e.seed, self.cfg.search.seed)

    def queue_pending_confirmation(self) -> bool:
        """Re-run a best that was kept on one seed when an earlier session ran out of budget (see verdict.py)."""
        if not (self.cfg.search.confirm and self.seeded):
            return False
        for e in self.store.experiments_in(Status.UNCONFIRMED):
            if e.kind == Kind.RERUN or self.store.reruns_of(e.id):
                continue
            self.queue_rerun(e, reason="confirm")
            self.emit(EventKind.CONFIRM, f"#{e.id} was kept on one seed when the last session's budget ran out; "
                                         "re-running it with another seed to confirm", e.id)
            return True
        return False

    def queue_noise_runs(self, base: Experiment) -> None:
        plan = self.seed_plan()
        if self.store.session(self.sid()).seeding != plan.how:
            self.store.update_session(self.sid(), seeding=plan.how)
            self.emit(EventKind.SEEDING, f"seeds: {plan.how}", base.id, route=plan.route.value)
        # with nothing to vary, one plain re-run tells a deterministic program from one that draws entropy
        wanted = self.cfg.search.noise_seeds if plan.varies else min(2, self.cfg.search.noise_seeds)
        have = 1 + len(self.store.reruns_of(base.id))
        for k in range(have, wanted):
            if self.budget_left() - len(self.store.experiments_in(Status.QUEUED)) <= 1:
                break
            self.queue_rerun(base, reason="noise", seed=self.cfg.search.seed + k)

    def queue_rerun(self, e: Experiment, reason: str, seed: int | None = None) -> None:
        used = {e.seed} | {x.seed for x in self.store.reruns_of(e.id)}
        if seed is None:
            seed = self.cfg.search.seed + 1
            while seed in used:
                seed += 1
        title = f"re-run #{e.id} with seed {seed} ({'noise floor' if reason == 'noise' else 'confirm'})"
        plan = self.seed_plan(e)
        if plan.route is SeedRoute.NONE:
            title = f"re-run #{e.id} as it is ({'noise floor' if reason == 'noise' else 'confirm'}: nothing to seed)"
        r = self.store.add_experiment(
            session_id=self.sid(), parent_id=e.id, title=title, rationale=plan.how, kind=Kind.RERUN, rerun_of=e.id,
            branch=e.branch, commit_sha=e.commit_sha, status=Status.QUEUED, seed=seed, knobs=e.knobs, edits=[],
            policy="engine", depth=e.depth, command=e.command,
        )
        changes = plan.edits(lambda p: self.ws.read_file(e.commit_sha or "", p) or "", seed, self.cfg.search.seed)
        if changes and e.commit_sha:
            # the seed is fixed in the code: this re-run gets a commit of its own with the seed literal changed
            branch, sha = self.ws.materialise(r.id, self.sid(), e.commit_sha, changes, f"{title}\n\n{plan.how}\n",
                                              self.cfg.links)
            self.store.update_experiment(r.id, branch=branch, commit_sha=sha, patch=self.ws.diff(e.commit_sha, sha))
