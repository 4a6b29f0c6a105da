"""A session's life in the store: opened (or woken), hibernated, ended with its report and promotion request.

The engine decides *when* a session opens, hibernates or ends (engine.py's loop); this room holds *what* each of those
writes: the session row and its deadline event, the promote approval for a best that beat the baseline, the morning
report and the note to the person who waits for it. It is bookkeeping on the store, the report files and the
notification command; none of it starts, stops or judges a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nightlab.agent.config import ProjectConfig
from nightlab.agent.ledger import Ledger
from nightlab.agent.metric_text import fmt_metric
from nightlab.agent.report import ReportFiles, write_session_report
from nightlab.agent.states import ApprovalKind, ApprovalState, EventKind, Mode, SessionState
from nightlab.agent.store import Session, Store
from nightlab.agent.workspace import Workspace
from nightlab.errors import NightlabError
from nightlab.sandbox import runner

__all__ = ["finish", "hibernate", "one_line", "open_session", "recorded_deadline", "wake_if_missed",
           "write_final_report"]

Emit = Callable[..., None]  # Engine.emit(kind, message, exp_id=None, **data)
Notify = Callable[[str], None]


def open_session(store: Store, root: Path, ws: Workspace, cfg: ProjectConfig, *, wake: bool, mode: Mode,
                 budget: int | None, unsafe: bool, deadline: float | None) -> tuple[Session, float | None]:
    """The session this engine runs: the latest one continued (`wake`), else a new one (an unfinished earlier one is
    closed first). Also the deadline it must end by: the one given, or — on a wake — the one it was started with."""
    latest = store.latest_session()
    if wake:
        if latest is None:
            raise NightlabError("nothing to wake: no session has run in this project")
        store.update_session(latest.id, state=SessionState.ACTIVE, wake_conditions=[], pid=os.getpid())
        return store.session(latest.id), deadline if deadline is not None else recorded_deadline(store, latest.id)
    if latest is not None and latest.state != SessionState.DONE:
        store.update_session(latest.id, state=SessionState.DONE)
    runs = budget if budget is not None else cfg.search.budget
    s = store.create_session(str(root), Mode(mode), cfg.search.policy, runs, ws.head_commit(), ws.current_branch(),
                             min_id=ws.branch_sessions_top() + 1)
    store.update_session(s.id, pid=os.getpid(), unsafe=int(unsafe))
    if deadline is not None:  # recorded as an event: a wake of this session keeps it
        by = time.strftime("%Y-%m-%d %H:%M", time.localtime(deadline))
        store.event(EventKind.DEADLINE, f"the session ends by {by}", session_id=s.id, data={"deadline": deadline})
    return store.session(s.id), deadline


def recorded_deadline(store: Store, sid: int) -> float | None:
    """The deadline a session was started with (its `deadline` event, the one whose data holds it: a run stopped at
    the deadline is told in a `deadline` event too), for the engine that wakes it."""
    for ev in reversed(store.events(session_id=sid)):
        if ev["kind"] == EventKind.DEADLINE:
            data = json.loads(ev["data"]) if isinstance(ev["data"], str) else ev["data"]
            value = data.get("deadline") if isinstance(data, dict) else None
            if isinstance(value, int | float):
                return float(value)
    return None


def wake_if_missed(store: Store, sid: int, wake_argv: Sequence[str]) -> None:
    """A job that ended after the last look but before the lock was let go found the lock held and woke nobody:
    having hibernated, start the wake it would have started (idempotent, like every wake)."""
    if store.session(sid).state != SessionState.HIBERNATING:
        return
    if any(runner.read_status(j.run_dir, j.wrapper) is not None for j in store.open_jobs()):
        subprocess.Popen(list(wake_argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def hibernate(store: Store, sid: int, conditions: list[str], emit: Emit) -> None:
    """Record what wakes the session and let the process go (its jobs, or a person's answer, wake it)."""
    store.update_session(sid, state=SessionState.HIBERNATING, wake_conditions=conditions, pid=None)
    emit(EventKind.HIBERNATE, "hibernating until: " + "; ".join(conditions) if conditions else "hibernating")


def withdraw_superseded_promotes(store: Store, best_id: int | None, emit: Emit) -> None:
    """Withdraw every pending promote request that is not for the best: an earlier session's best that a newer one
    beat (or whose confirmation discarded it) is no longer worth a person's review. Decided by nightlab, the reason
    kept as the approval's feedback and said in the events."""
    for a in store.approvals(ApprovalState.PENDING):
        if a.kind != ApprovalKind.PROMOTE or a.experiment_id is None or a.experiment_id == best_id:
            continue
        why = f"#{best_id} is the best now" if best_id is not None else "it is no longer the best"
        if store.decide(a.id, ApprovalState.REJECTED, "nightlab", f"superseded: {why}"):
            emit(EventKind.SUPERSEDED, f"the request to promote #{a.experiment_id} is withdrawn: {why}",
                 a.experiment_id)


def finish(store: Store, root: Path, cfg: ProjectConfig, ledger: Ledger, sid: int, emit: Emit,
           notify: Notify) -> ReportFiles | None:
    """End the session: a best that beat the baseline waits for review (a promote approval), the report is written
    and the person told. Returns the report's files (None when it could not be written)."""
    store.update_session(sid, state=SessionState.DONE, wake_conditions=[], pid=None)
    best_id, best_val = ledger.best()
    base = ledger.baseline()
    base_val = ledger.score(base.id) if base else None
    improved = best_id is not None and base is not None and best_id != base.id
    withdraw_superseded_promotes(store, best_id if improved else None, emit)
    if improved and store.pending_approval(kind=ApprovalKind.PROMOTE, experiment_id=best_id) is None:
        store.add_approval(ApprovalKind.PROMOTE, {"metric": best_val, "baseline": base_val}, sid, best_id)
    files = write_final_report(store, root, cfg, sid, emit)
    report = f"; report: {files.html}" if files is not None else ""
    if improved:
        notify(f"nightlab: session done; best #{best_id} {cfg.metric.name} {fmt_metric(best_val)} "
               f"(baseline {fmt_metric(base_val)}) waits for review{report}")
    elif files is not None:
        notify(f"nightlab: session done; no change beat the baseline{report}")
    emit(EventKind.DONE, f"session {sid} done: {store.session(sid).runs_started} run(s)")
    return files


def write_final_report(store: Store, root: Path, cfg: ProjectConfig, sid: int, emit: Emit) -> ReportFiles | None:
    """The morning report, written as the session ends; a failure to write it is recorded, never raised."""
    try:
        files = write_session_report(root, cfg, store, sid)
    except Exception as err:  # the session's results are in the store whatever happens to its report
        emit(EventKind.REPORT_ERROR, f"could not write the session report: {one_line(err)}")
        return None
    where = str(files.html)
    emit(EventKind.REPORT, f"report: {where}", path=where)
    return files


def one_line(err: BaseException) -> str:
    """An error's first line, for an event (the engine's and the session's alike)."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]
