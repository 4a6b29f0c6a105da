"""`nightlab doctor`: check the store, the worktrees and the sandbox; repair what can be repaired without loss.

What it repairs, and only that: a damaged store is moved aside (kept, with its WAL files, under a dated name) and a
new, empty one takes its place (new sessions are numbered after every session that has branches, so no old branch
name is reused); worktrees of settled experiments are pruned (their branches stay); stale git worktree records are
pruned. What it never does: delete a branch, a run dir, or a worktree whose experiment it does not know or whose job
may still run. Repairs need the project lock (no engine awake); with an engine running it only reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from nightlab.agent.lock import ProjectLock
from nightlab.agent.store import ACTIVE, Store, StoreDamaged, damage
from nightlab.agent.workspace import Workspace

OK, REPAIRED, PROBLEM, NOTE = "ok", "repaired", "problem", "note"
STORE_FILE = "nightlab.db"


@dataclass
class Finding:
    state: str  # ok | repaired | problem | note
    text: str

    def line(self) -> str:
        return f"{self.state}: {self.text}"


def run_doctor(root: Path, sandbox: bool = True) -> list[Finding]:
    """Every check, in order; repairs are made as they are found (see the module docstring)."""
    ws = Workspace(root)
    state = ws.state_dir
    lock = ProjectLock(state)
    held = state.exists() and lock.is_held()
    if held:
        out = [Finding(NOTE, "an engine is awake for this project: reporting only, no repairs")]
    else:
        out = []
        if state.exists():
            lock.acquire("doctor")
    try:
        store, findings = _check_store(ws, repair=not held)
        out += findings
        if store is not None:
            out += _check_worktrees(ws, store, repair=not held)
            store.close()
    finally:
        if lock.fd is not None:
            lock.release()
    if sandbox:
        out += _check_sandbox()
    return out


def _check_store(ws: Workspace, repair: bool) -> tuple[Store | None, list[Finding]]:
    path = ws.state_dir / STORE_FILE
    branches = ws.nightlab_branches()
    if not path.exists() and not path.is_symlink():
        out = [Finding(OK, f"{path}: no store yet (nothing has run in this project)")]
        if branches:
            out.append(Finding(NOTE, f"{len(branches)} nightlab branch(es) from an earlier store are kept; new "
                                     f"sessions are numbered from {ws.branch_sessions_top() + 1}"))
        return None, out
    what = damage(path)
    store: Store | None = None
    if not what:
        try:
            store = Store(path)
        except StoreDamaged as err:
            what = err.what
    if store is not None:
        check = store.db.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in check] == ["ok"]:
            n_s = store.db.execute("SELECT count(*) FROM sessions").fetchone()[0]
            n_e = store.db.execute("SELECT count(*) FROM experiments").fetchone()[0]
            return store, [Finding(OK, f"{path}: schema {store.version}, {n_s} session(s), {n_e} experiment(s), "
                                       "integrity ok")]
        what = "integrity check failed: " + "; ".join(str(r[0]) for r in check[:3])
        store.close()
    if not repair:
        return None, [Finding(PROBLEM, f"{path}: damaged ({what}); stop the engine, then run `nightlab doctor`")]
    aside = path.with_name(f"{STORE_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists() or src.is_symlink():
            src.rename(Path(str(aside) + suffix))
    store = Store(path)
    top = ws.branch_sessions_top()
    kept = f"; the {len(branches)} nightlab branch(es) of the old one are kept" if branches else ""
    nxt = f", new sessions start at {top + 1}" if top else ""
    return store, [Finding(REPAIRED, f"{path}: damaged ({what}); moved it to {aside.name} and started a new, "
                                     f"empty store{kept}{nxt}")]


def _check_worktrees(ws: Workspace, store: Store, repair: bool) -> list[Finding]:
    from nightlab.sandbox import runner

    out: list[Finding] = []
    exps = {e.id: e for e in store.experiments()}
    running = {j.experiment_id for j in store.open_jobs() if runner.wrapper_alive(j.run_dir, j.wrapper)}
    for job in store.open_jobs():
        if job.experiment_id not in running and runner.read_status(job.run_dir, job.wrapper) is None:
            out.append(Finding(NOTE, f"the job of #{job.experiment_id} ended without a status: the next "
                                     "`nightlab run` or `nightlab wake` records it as lost and runs it again"))
    pruned, unknown = [], []
    if ws.worktrees.exists():
        for d in sorted(ws.worktrees.iterdir(), key=lambda p: p.name):
            e = exps.get(int(d.name)) if d.name.isdigit() else None
            if e is None:
                unknown.append(d.name)
            elif e.status not in ACTIVE and e.id not in running and repair:
                ws.prune(e.id)
                pruned.append(d.name)
    if pruned:
        out.append(Finding(REPAIRED, f"pruned the worktrees of settled experiment(s) {', '.join(pruned)} "
                                     "(their branches stay)"))
    if unknown:
        out.append(Finding(NOTE, f"kept worktree(s) no experiment of this store knows: {', '.join(unknown)} "
                                 f"(under {ws.worktrees})"))
    known = {e.branch for e in exps.values() if e.branch}
    strangers = [b for b in ws.nightlab_branches() if b not in known]
    if strangers:
        out.append(Finding(NOTE, f"{len(strangers)} nightlab branch(es) no experiment of this store knows are kept "
                                 f"(e.g. {strangers[0]})"))
    if repair:
        ws.repo.git.worktree("prune")
    if not pruned:
        out.append(Finding(OK, "worktrees: none left over from settled experiments"))
    return out


def _check_sandbox() -> list[Finding]:
    from nightlab.sandbox import isolate

    caps = isolate.probe(refresh=True)
    state = OK if caps.best() else PROBLEM
    return [Finding(state, "sandbox, probed afresh:\n" + caps.describe())]
