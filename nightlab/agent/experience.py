"""The experience store: every decision step, as the policy saw it when it decided, and what came of it.

Two places hold it:

* the project's own store (the `steps` table of `.nightlab/nightlab.db`): per step the state's features, the
  candidate moves with their features and labels, the move taken, and the prompt — for a language model's step
  exactly the messages it was sent and the arguments of its tool call; for any other policy's step the prompt the
  LLM policy would have been sent, rendered from the same state at the same moment, code included. What the
  trajectory export (trajectories.py) reads.
* the user's store, `$XDG_DATA_HOME/nightlab/experience.db` (default `~/.local/share/nightlab/experience.db`),
  gathering the steps of every project that shares them (`[experience] share = true`, the default; `false` keeps a
  project's steps in the project only): features and outcomes only — numbers and words of nightlab's own fixed
  vocabularies (policy/features.py), a hash for the project, never a prompt, a title, a file name, code or a
  secret. What `nightlab learn` trains on.

A step is written at decision time, before anything of its outcome exists (an experiment still running shows as
running in its state, never with its result); the outcome — reward, its parts (reward.explain), the stage reached,
the run's duration, the verdict — is added when the run settles. A user store that cannot be written (a read-only
home) costs the project nothing: the step stays in the project's store and the engine says so once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nightlab.agent.policy.decision import FIX, PROPOSE, Decision
from nightlab.agent.proposal import ExperimentView, PolicyContext
from nightlab.agent.store import Experiment, Store

USER_DB = "experience.db"
FORMAT = 1  # of a user-store row; a learner skips rows of a format it does not know
# the reward parts kept (reward.explain): the additive parts and the improvement in noise units; never a metric value
PARTS = ("stage_credit", "improvement", "duration_penalty", "failure_penalty", "units")
# kept in the project's own store only (metric values): what the reward was judged against, so that another
# completion for the same step can be scored on the same terms (rollout.py, the `rewards` export)
REFERENCES = ("baseline", "best_before", "noise_floor")


def data_dir() -> Path:
    """`$XDG_DATA_HOME/nightlab` (read on every call, so tests and users can point it elsewhere)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nightlab"


def user_store_path() -> Path:
    return data_dir() / USER_DB


def project_id(root: Path | str) -> str:
    """How the user store names a project: a hash of its path (the path itself never leaves the project)."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- the user store
_USER_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    uid TEXT PRIMARY KEY, project TEXT, format INTEGER, t REAL, kind TEXT, policy TEXT, state TEXT,
    candidates TEXT, chosen INTEGER, reward REAL, reward_parts TEXT, stage TEXT, seconds REAL, outcome TEXT,
    failure_class TEXT
);
"""


@contextmanager
def _user_db(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    path = path or user_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_USER_SCHEMA)
        yield conn
    finally:
        conn.close()


def _shareable_candidates(candidates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates without their labels (a label is a move's title, which may name the user's knobs)."""
    return [{"features": c.get("features", {}), "valid": c.get("valid")} for c in candidates]


def _share_step(root: Path, step_id: int, row: dict[str, Any]) -> str | None:
    """Insert (or complete) a step in the user store; an error's one line, None when it worked."""
    uid = f"{project_id(root)}:{step_id}"
    try:
        with _user_db() as db:
            db.execute(
                "INSERT OR IGNORE INTO steps (uid, project, format, t, kind, policy, state, candidates, chosen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uid, project_id(root), FORMAT, row["t"], row["kind"], row["policy"], json.dumps(row["state"]),
                 json.dumps(_shareable_candidates(row["candidates"] or [])), row["chosen"]))
            if row.get("settled_t") is not None:
                parts = {k: v for k, v in (row["reward_parts"] or {}).items() if k in PARTS}  # never a metric value
                db.execute("UPDATE steps SET reward = ?, reward_parts = ?, stage = ?, seconds = ?, outcome = ?, "
                           "failure_class = ? WHERE uid = ?",
                           (row["reward"], json.dumps(parts), row["stage"], row["seconds"], row["outcome"],
                            row["failure_class"], uid))
    except (OSError, sqlite3.Error) as err:
        return f"the user's experience store {user_store_path()} cannot be written: {err}"
    return None


# ----------------------------------------------------------------------------------------------- recording
def render_prompt(ctx: PolicyContext, failed: ExperimentView | None, context_chars: int) -> list[dict[str, Any]]:
    """The messages the LLM policy would send for this step, from the same state (files as of that commit)."""
    from nightlab.agent.config import LLMConfig
    from nightlab.agent.policy.llm import LLMPolicy

    return LLMPolicy(LLMConfig(context_chars=context_chars)).messages(ctx, failed)


def record(store: Store, root: Path, *, session_id: int, experiment: Experiment | None, policy: str,
           decision: Decision | None, ctx: PolicyContext, failed: ExperimentView | None, share: bool,
           context_chars: int = 60_000) -> tuple[int, str | None]:
    """Write one decision step as it stands now (no outcome yet). Returns the step id and a problem with the user
    store, if any (the step is in the project's store all the same)."""
    kind = FIX if failed is not None else PROPOSE
    if decision is None:  # a policy that leaves no record of its own (a user's policy object)
        from nightlab.agent.policy.features import state_features

        decision = Decision(kind=kind, state=state_features(ctx))
    messages = decision.messages or render_prompt(ctx, failed, context_chars)
    row: dict[str, Any] = {
        "session_id": session_id, "experiment_id": experiment.id if experiment else None, "t": time.time(),
        "kind": decision.kind or kind, "policy": policy, "state": decision.state,
        "candidates": [c.__dict__ for c in decision.candidates], "chosen": decision.chosen,
        "tool": decision.tool, "messages": messages, "answer": decision.answer,
        "outcome": None if experiment else "refused", "reward": None, "reward_parts": None, "stage": None,
        "seconds": None, "failure_class": None, "settled_t": None,
    }
    sid = store.add_step(**row)
    problem = _share_step(root, sid, row) if share else None
    return sid, problem


def settle(store: Store, root: Path, e: Experiment, parts: dict[str, Any], share: bool) -> dict[str, Any] | None:
    """Add a settled run's outcome to the step that proposed it; the step (None when no step proposed it: the
    baseline, seed re-runs). A problem with the user store is left under the key "problem"."""
    rows = store.steps(experiment_id=e.id)
    if not rows:
        return None
    row = rows[-1]
    changes = {
        "reward": e.reward, "reward_parts": {k: parts.get(k) for k in PARTS + REFERENCES}, "stage": e.stage or "",
        "seconds": e.seconds, "outcome": str(e.status), "failure_class": e.failure_class, "settled_t": time.time(),
    }
    store.update_step(row["id"], **changes)
    row.update(changes)
    if share:
        problem = _share_step(root, row["id"], row)
        if problem:
            row["problem"] = problem
    return row


def session_steps(store: Store, session_id: int) -> list[dict[str, Any]]:
    """The settled steps of one session, in order (what an online learner replays after a restart)."""
    return store.steps(session_id=session_id, settled=True)


# ----------------------------------------------------------------------------------------------- reading
def user_steps(path: Path | None = None) -> list[dict[str, Any]]:
    """Every settled step of the user store (of a format this nightlab reads), oldest first."""
    path = path or user_store_path()
    if not path.exists():
        return []
    with _user_db(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM steps WHERE reward IS NOT NULL AND format = ? ORDER BY t",
                          (FORMAT,)).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        for k in ("state", "candidates", "reward_parts"):
            d[k] = json.loads(d[k]) if d.get(k) else None
        out.append(d)
    return out


__all__ = ["FORMAT", "data_dir", "project_id", "record", "render_prompt", "session_steps", "settle",
           "user_steps", "user_store_path"]
