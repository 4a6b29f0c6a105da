"""Admission: what a proposal must pass to become an experiment, and how it becomes one (a row, then a branch and
a commit).

A policy's proposal is only words and edits until it is admitted. Admission vets it against the parent it changes —
edits that apply, the editable and protected files, the metric's own measurement untouched (a fix excepted), a
change that changes something, nothing tried before — records it (refused ones too, so memory knows them), then
makes its branch and commit and refuses a commit whose files repeat an earlier experiment's. Three refusals in a
row end the session's planning (the engine's `exhaust`). The row is written before the branch, so a crash in
between leaves a recorded proposal that `materialise` completes on the next reconcile.

What happens to an admitted experiment — queued, or waiting at a checkpoint or for a person's approval — is the
engine's state machine; this room decides only whether a proposal may exist and makes it exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nightlab.agent import memory
from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import apply_edits
from nightlab.agent.ledger import Ledger
from nightlab.agent.measuring import (
    command_held,
    command_measurement_changes,
    command_protected_changes,
    measurement_edits,
)
from nightlab.agent.policy_view import view
from nightlab.agent.proposal import Edit, Proposal
from nightlab.agent.states import EventKind, Kind, Status
from nightlab.agent.store import Experiment, Store
from nightlab.agent.workspace import Workspace
from nightlab.errors import EditError, GitError

__all__ = ["REFUSALS_THAT_END_PLANNING", "Admission", "commit_message"]

REFUSALS_THAT_END_PLANNING = 3


class Admission:
    """Vets, records and commits the proposals of the session `sid()` names; counts the refusals in a row."""

    def __init__(self, store: Store, ws: Workspace, cfg: ProjectConfig, ledger: Ledger, sid: Callable[[], int],
                 policy_name: Callable[[], str], phase_of: Callable[[str], str | None],
                 emit: Callable[..., Any], exhaust: Callable[[], None]) -> None:
        self.store, self.ws, self.cfg, self.ledger = store, ws, cfg, ledger
        self.sid, self.policy_name, self.phase_of = sid, policy_name, phase_of
        self.emit, self.exhaust = emit, exhaust
        self.streak = 0  # proposals refused (or failed to come) in a row

    def count_refusal(self) -> None:
        """One more proposal refused or failed in a row; the third in a row ends the session's planning."""
        self.streak += 1
        if self.streak >= REFUSALS_THAT_END_PLANNING:
            self.exhaust()

    def baseline(self) -> Experiment:
        """The session's baseline: the code as committed, queued on a branch of its own."""
        e = self.store.add_experiment(
            session_id=self.sid(), parent_id=None, title="baseline: the code as committed",
            rationale="measure the starting point (and, with other seeds, the noise)", kind=Kind.BASELINE,
            seed=self.cfg.search.seed, status=Status.QUEUED, policy="engine", edits=[], knobs={},
        )
        return self._materialise_baseline(e)

    def _materialise_baseline(self, e: Experiment) -> Experiment:
        """The baseline's branch: its session's base commit as it is (no parent experiment to build on). Woken
        after a crash, that is still the session the row was written in, not a later one."""
        sid = e.session_id or self.sid()
        base_commit = self.store.session(sid).base_commit or self.ws.head_commit()
        branch, sha = self.ws.materialise(e.id, sid, base_commit, {}, e.title, self.cfg.links)
        self.store.update_experiment(e.id, branch=branch, commit_sha=sha, patch="")
        self.emit(EventKind.BASELINE, f"#{e.id} baseline queued (commit {sha[:8]})", e.id)
        return self.store.experiment(e.id)

    def admit(self, proposal: Proposal, depth: int = 0) -> Experiment | None:
        """Validate a proposal, record it and make its branch and commit: the experiment, status `proposed`, or None
        when it was refused (recorded and said)."""
        best_id, _ = self.ledger.best()
        base = self.ledger.baseline()
        parent_id = proposal.parent_id if proposal.parent_id is not None else (best_id or (base.id if base else None))
        parent = self.store.experiment(parent_id) if parent_id is not None else None
        if parent is None or parent.commit_sha is None:
            self.emit(EventKind.POLICY_ERROR, f"proposal {proposal.title!r} has no usable parent")
            self.streak += 1  # counted, but never the one that ends planning
            return None
        try:
            changes = apply_edits(
                proposal.edits, lambda p: self.ws.read_file(parent.commit_sha or "", p), list(self.cfg.editable),
                self.cfg.protected, lambda p: self.ws.link_in_path(parent.commit_sha or "", p),
            )
        except EditError as err:
            self.emit(EventKind.POLICY_ERROR, f"refused {proposal.title!r}: {err}")
            self._refuse(proposal, parent, depth, f"invalid edit: {err}")
            return None
        if proposal.kind != Kind.FIX:  # a crash's repair may have to reach into the evaluation code; nothing else
            read = lambda p: self.ws.read_file(parent.commit_sha or "", p)
            tracked = self.ws.tracked_files(parent.commit_sha)
            measuring = measurement_edits(read, tracked, changes, self.cfg.metric.name, self.cfg.protected)
            if proposal.command is not None:
                measuring += [f"command: {flag}" for flag in command_measurement_changes(
                    parent.command or self.cfg.command, proposal.command,
                    command_held(read, tracked, self.cfg.protected, self.cfg.metric.name))]
                measuring += [f"command: {what}" for what in command_protected_changes(
                    parent.command or self.cfg.command, proposal.command, tracked, self.cfg.protected)]
            if measuring:
                why = f"it changes how the metric is measured ({', '.join(measuring)})"
                self.emit(EventKind.POLICY_ERROR, f"refused {proposal.title!r}: {why}")
                self._refuse(proposal, parent, depth, why)
                return None
        # a command-line setting changes the experiment's command (kept with it; None: the project's)
        command = proposal.command if proposal.command is not None else parent.command
        command = None if command in (None, "", self.cfg.command) else command
        if not changes and command == (parent.command or None):
            self.emit(EventKind.POLICY_ERROR, f"refused {proposal.title!r}: it changes nothing")
            self.count_refusal()
            return None
        proposal.parent_id = parent.id
        exps = self.store.experiments()
        repeat = memory.is_repeat(proposal, [view(x) for x in exps], {x.id: x.patch or "" for x in exps})
        if repeat is not None:
            self.emit(EventKind.DUPLICATE, f"refused {proposal.title!r}: it repeats {repeat}")
            self._refuse(proposal, parent, depth, f"repeats {repeat}")
            return None
        self.streak = 0
        e = self.store.add_experiment(
            session_id=self.sid(), parent_id=parent.id, title=proposal.title, rationale=proposal.rationale,
            expected_effect=proposal.expected_effect, kind=proposal.kind, knobs=proposal.knobs,
            edits=[{"path": x.path, "search": x.search, "replace": x.replace} for x in proposal.edits],
            seed=proposal.seed if proposal.seed is not None else self.cfg.search.seed, status=Status.PROPOSED,
            policy=self.policy_name(), usage=proposal.usage, depth=depth, diagnosis=proposal.diagnosis or None,
            command=command, phase=self.phase_of(proposal.phase), predicted_s=proposal.predicted_s,
            priced=proposal.priced,
        )
        made = self.materialise(e)
        if made is None:
            return None
        e = made
        dup = self._duplicate_of(e)
        if dup is not None:
            self.store.update_experiment(e.id, status=Status.REJECTED, error=f"repeats #{dup.id} ({dup.title})")
            self.ws.prune(e.id)
            self.emit(EventKind.DUPLICATE, f"refused #{e.id} {e.title!r}: it repeats #{dup.id}", e.id)
            return None
        return e

    def _refuse(self, proposal: Proposal, parent: Experiment, depth: int, why: str) -> None:
        """Record a proposal refused before it became an experiment (so memory knows it), and count it: three
        refusals in a row end the session's planning."""
        self.count_refusal()
        self.store.add_experiment(
            session_id=self.sid(), parent_id=parent.id, title=proposal.title, rationale=proposal.rationale,
            kind=proposal.kind, knobs=proposal.knobs, edits=[e.__dict__ for e in proposal.edits],
            status=Status.REJECTED, error=why, seed=self.cfg.search.seed,
            policy=self.policy_name(), usage=proposal.usage, depth=depth,
        )

    def materialise(self, e: Experiment) -> Experiment | None:
        """Create the branch and commit for a recorded experiment (idempotent, used by reconcile too)."""
        if e.kind == Kind.BASELINE:  # killed between its row and its branch: the session's first run, not a refusal
            try:
                return self._materialise_baseline(e)
            except GitError as err:  # said once and recorded, not raised again by every wake that follows
                self.store.update_experiment(e.id, status=Status.REJECTED, error=f"not committed: {err}")
                self.emit(EventKind.FAILED, f"the baseline #{e.id} could not be committed: {err}", e.id)
                return None
        parent = self.store.experiment(e.parent_id) if e.parent_id is not None else None
        if parent is None or parent.commit_sha is None:
            self.store.update_experiment(e.id, status=Status.REJECTED, error="parent has no commit")
            return None
        edits = [Edit(**x) for x in e.edits]
        try:
            changes = apply_edits(edits, lambda p: self.ws.read_file(parent.commit_sha or "", p),
                                  list(self.cfg.editable), self.cfg.protected,
                                  lambda p: self.ws.link_in_path(parent.commit_sha or "", p))
            message = commit_message(e)
            branch, sha = self.ws.materialise(e.id, e.session_id or self.sid(), parent.commit_sha, changes, message,
                                              self.cfg.links)
        except (EditError, GitError) as err:
            # a change that cannot be committed is refused like an invalid one: recorded, and never retried by the
            # next run's recovery (which re-materialises only experiments still waiting for a commit)
            what = "invalid edit" if isinstance(err, EditError) else "not committed"
            self.store.update_experiment(e.id, status=Status.REJECTED, error=f"{what}: {err}")
            self.emit(EventKind.POLICY_ERROR, f"refused #{e.id} {e.title!r}: {err}", e.id)
            return None
        patch = self.ws.diff(parent.commit_sha, sha)
        self.store.update_experiment(e.id, branch=branch, commit_sha=sha, patch=patch)
        return self.store.experiment(e.id)

    def _duplicate_of(self, e: Experiment) -> Experiment | None:
        """An earlier experiment (not a seed re-run, not refused) whose commit holds exactly the same files."""
        if not e.commit_sha:
            return None
        tree = self.ws.tree_of(e.commit_sha)
        if tree is None:
            return None
        for other in self.store.experiments():
            if other.id == e.id or other.kind == Kind.RERUN or not other.commit_sha or \
                    other.status == Status.REJECTED:
                continue
            if self.ws.tree_of(other.commit_sha) == tree and other.command == e.command:
                return other
        return None


def commit_message(e: Experiment) -> str:
    """An experiment's commit message: its title, its rationale, and a trailer naming it."""
    body = e.rationale.strip()
    msg = e.title.strip() or f"experiment {e.id}"
    if body:
        msg += "\n\n" + body
    return msg + f"\n\nNightlab-Experiment: {e.id}\n"
