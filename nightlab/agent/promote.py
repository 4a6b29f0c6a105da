"""Promote = review the experiment's whole change against the user's branch, then commit it there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nightlab.agent import artifacts
from nightlab.agent.config import find_config, load_config, set_command
from nightlab.agent.store import Experiment, Store
from nightlab.agent.workspace import STATE_DIR, Workspace
from nightlab.errors import GitError, NightlabError
from nightlab.sandbox.watch import signal_project


@dataclass
class Preview:
    """What a promote would do: the code diff against the user's branch and, when the experiment changed a setting
    on the command line, the project's command before and after (promote writes the new one into the config)."""

    diff: str
    stat: str
    branch: str
    files: list[str]
    base: str
    artifacts: artifacts.Artifacts | None = None  # the files the run wrote (they stay there; promote copies none)
    command: tuple[str, str] | None = None  # (the project's command now, the experiment's)

    def command_text(self) -> str:
        """The command change as diff-like lines for a review, "" when the command stays as it is."""
        if self.command is None:
            return ""
        old, new = self.command
        return f"command (nightlab.toml):\n- {old}\n+ {new}\n"


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
    if e.kind == "rerun" and e.rerun_of is not None:
        raise NightlabError(f"experiment #{e.id} re-runs #{e.rerun_of} with another seed; promote #{e.rerun_of}")
    ws = Workspace(root)
    base = chain_base(store, e) or ws.head_commit()
    command = _command_change(root, e)
    try:
        patch, files = ws.promote_check(base, e.commit_sha)
    except GitError:
        if command is None or ws.changed_files(base, e.commit_sha):
            raise
        patch, files = "", []  # only the command changes
    kept = artifacts.read(Path(root) / STATE_DIR, e.id)
    return Preview(diff=patch, stat=ws.diff_stat(base, e.commit_sha).summary() if files else "command only",
                   branch=ws.current_branch() or "HEAD", files=files, base=base,
                   artifacts=kept, command=command)


def command_change(root: Path, store: Store, e: Experiment, against_base: bool = False) -> tuple[str, str] | None:
    """(old, new) when experiment `e` runs another command than its parent (or, `against_base`, than the project),
    else None: what `nightlab diff` shows above the code diff."""
    if against_base:
        return _command_change(root, e)
    parent = store.find_experiment(e.parent_id) if e.parent_id is not None else None
    project = load_config(root).command
    old, new = (parent.command if parent else None) or project, e.command or project
    return None if old == new else (old, new)


def _command_change(root: Path, e: Experiment) -> tuple[str, str] | None:
    if not e.command:
        return None
    current = load_config(root).command
    return None if current == e.command else (current, e.command)


def promote_experiment(root: Path, store: Store, e: Experiment, who: str) -> str:
    """Commit the change onto the user's branch (squashed, the hypothesis as message). Returns the new commit."""
    pv = promote_preview(root, store, e)
    ws = Workspace(root)
    message = e.title.strip()
    if e.rationale.strip():
        message += "\n\n" + e.rationale.strip()
    session = store.latest_session()
    message += f"\n\nPromoted from nightlab experiment #{e.id} ({e.branch}).\n"
    if pv.command is not None:
        message += f"Run it with: {pv.command[1]}\n"
    message += "Co-authored-by: nightlab <nightlab@localhost>\n"
    also: list[str] = []
    if pv.command is not None:
        # the setting lives on the command line: the project's command becomes the experiment's, so the next
        # session's baseline runs what was promoted; a tracked config file goes into the same commit
        path = find_config(root)
        if path is None:
            raise NightlabError(f"{root}: no nightlab.toml to carry the command into; run it with: {pv.command[1]}")
        rel = path.relative_to(root).as_posix()
        if ws.is_tracked(path):
            if ws.dirty_paths([rel]):
                raise NightlabError(f"refusing to promote: uncommitted changes in {rel}; commit or stash them first")
            also = [rel]
        if pv.files:
            ws.promote_check(pv.base, e.commit_sha or "")
        set_command(path, pv.command[1])
    if pv.files:
        sha = ws.promote(pv.base, e.commit_sha or "", message, also=also)
    elif also:
        sha = ws.commit_paths(also, message)
    else:
        sha = ws.head_commit()  # only an untracked nightlab.toml changed: nothing to commit
    store.update_experiment(e.id, status="promoted")
    for a in store.approvals("pending"):
        if a.experiment_id == e.id and a.kind == "promote":
            store.decide(a.id, "approved", who)
    store.event("promoted", f"#{e.id} promoted onto {pv.branch} as {sha[:10]}", experiment_id=e.id,
                session_id=session.id if session else None, data={"commit": sha})
    signal_project(Path(root) / ".nightlab")
    return sha
