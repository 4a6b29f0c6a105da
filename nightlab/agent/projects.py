"""Every project this user has run: a registry in the user's data folder, and an overview of each project.

An engine registers its project when it opens a session (`register`): one small file per project under
`$XDG_DATA_HOME/nightlab/projects/` (default `~/.local/share/nightlab/projects/`), named by a hash of the path, so
two engines registering at once never race on one file. `overview()` reads each project's own store, read-only,
for what `nightlab projects` and the TUI's overview screen show: mode, awake or hibernating, best against the
baseline, jobs running or queued and where, approvals waiting. A project deleted or moved since is listed as
missing, never an error; a broken config is shown as that project's problem, and the others are still listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from nightlab.agent.config import load_config
from nightlab.agent.ledger import summarize
from nightlab.agent.lock import ProjectLock
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import ApprovalState, SessionState, Status
from nightlab.agent.store import Store
from nightlab.errors import NightlabError


def registry_dir() -> Path:
    """`$XDG_DATA_HOME/nightlab/projects` (read on every call, so tests and users can point it elsewhere)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nightlab" / "projects"


def _entry(root: Path) -> Path:
    return registry_dir() / (hashlib.sha1(str(root).encode()).hexdigest()[:16] + ".json")


def register(root: Path) -> None:
    """Remember this project (idempotent; keeps the first-seen time). A read-only data folder is not an error:
    the project runs all the same, it is only missing from the overview."""
    root = Path(root).resolve()
    path = _entry(root)
    try:
        first = json.loads(path.read_text()).get("first_seen", time.time()) if path.exists() else time.time()
    except (OSError, json.JSONDecodeError):
        first = time.time()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"root": str(root), "first_seen": first, "last_seen": time.time()}))
        os.replace(tmp, path)
    except OSError:
        pass


def registered() -> list[Path]:
    """The roots of every registered project, most recently used first."""
    found: list[tuple[float, Path]] = []
    d = registry_dir()
    for f in d.glob("*.json") if d.is_dir() else []:
        try:
            data = json.loads(f.read_text())
            found.append((float(data.get("last_seen", 0)), Path(str(data["root"]))))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return [root for _, root in sorted(found, key=lambda x: -x[0])]


def overview(root: Path) -> dict[str, Any]:
    """One project's row: path, mode, engine (awake / hibernating / waiting / stopped / done / no session),
    baseline and best, jobs running and queued and where they run, approvals waiting; `problem` when it cannot be
    read (deleted, no config, a broken config)."""
    root = Path(root)
    row: dict[str, Any] = {"path": str(root), "name": root.name, "problem": None, "mode": None, "engine": None,
                           "session": None, "metric": None, "goal": None, "baseline": None, "best": None,
                           "best_id": None, "running": [], "queued": 0, "approvals": 0, "wake_conditions": []}
    if not root.is_dir():
        row["problem"] = "missing: the folder is gone"
        return row
    try:
        cfg = load_config(root)
    except NightlabError as err:
        row["problem"] = str(err)
        return row
    row["metric"], row["goal"] = cfg.metric.name, cfg.metric.goal
    paths = StatePaths.of(root)
    db = paths.db
    if not db.exists():
        row["engine"] = "no session"
        return row
    store = Store(db)
    session = store.latest_session()
    summary = summarize(store, cfg, session)
    awake = ProjectLock(paths.dir).is_held()
    if session is None:
        engine = "awake" if awake else "no session"
    elif awake:
        engine = "waiting" if session.state == SessionState.WAITING else "awake"
    else:
        engine = session.state if session.state in (SessionState.HIBERNATING, SessionState.DONE) else "stopped"
    exps = {e.id: e for e in store.experiments()}
    row.update({
        "mode": session.mode if session else None, "engine": engine, "session": session.id if session else None,
        "baseline": summary.baseline, "best": summary.best, "best_id": summary.best_id,
        "wake_conditions": list(session.wake_conditions) if session else [],
        "queued": len([e for e in exps.values() if e.status == Status.QUEUED]),
        "approvals": len(store.approvals(ApprovalState.PENDING)),
        "running": [{"experiment": j.experiment_id, "where": j.where,
                     "queued": j.remote and j.run_started is None,
                     "title": exps[j.experiment_id].title if j.experiment_id in exps else "",
                     "running_s": round(time.time() - (j.started or time.time()), 1)} for j in store.open_jobs()],
    })
    return row


def overview_all() -> list[dict[str, Any]]:
    """Every registered project's row (see `overview`), most recently used first."""
    return [overview(root) for root in registered()]


__all__ = ["overview", "overview_all", "register", "registered", "registry_dir"]
