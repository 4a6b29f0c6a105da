"""The single source of truth: one SQLite file per project (`.nightlab/nightlab.db`), WAL mode, versioned schema.

Every state change the engine makes lands here before it acts on it, so a process killed at any moment can be
resumed by reading the store back (see `Engine.reconcile`). The TUI and the CLI read it; what they change, they change
through the front desk (actions.py). States are the StrEnums of states.py, written as their values; the agent asks
through the named queries below rather than with SQL of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nightlab.agent.lean import hidden_module
from nightlab.agent.records import Approval, Experiment, Job, Session
from nightlab.agent.states import (
    ACTIVE,
    OPEN_JOB_STATES,
    ApprovalKind,
    ApprovalState,
    EventKind,
    JobState,
    Kind,
    Mode,
    SessionState,
    Status,
)
from nightlab.agent.states import SETTLED as SETTLED
from nightlab.agent.states import UNCONFIRMED_LABEL as UNCONFIRMED_LABEL
from nightlab.agent.terminal_text import printable
from nightlab.errors import NightlabError

with hidden_module("pandas"):  # sqlite_utils imports pandas when installed, for a type the store never writes
    import sqlite_utils

SCHEMA_VERSION = 12

EXPERIMENT_STATUSES = tuple(Status)
# how a schema-4 store marked a best kept on one seed: status `kept` plus this sentence in `error` (see _v7)
V4_UNCONFIRMED_NOTE = ("unconfirmed: no run left to re-run it with another seed "
                       "(the next `nightlab run` does that first)")


def _v1(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS sessions (
            id INTEGER PRIMARY KEY, project TEXT, created REAL, mode TEXT, policy TEXT, budget INTEGER,
            runs_started INTEGER DEFAULT 0, state TEXT, wake_conditions TEXT, base_commit TEXT, base_branch TEXT,
            updated REAL
        );
        CREATE TABLE IF NOT EXISTS experiments (
            id INTEGER PRIMARY KEY, session_id INTEGER, parent_id INTEGER, title TEXT, rationale TEXT,
            expected_effect TEXT, kind TEXT, knobs TEXT, edits TEXT, patch TEXT, branch TEXT, commit_sha TEXT,
            status TEXT, run_result TEXT, metric REAL, curve TEXT, failure_class TEXT, diagnosis TEXT,
            seconds REAL, seed INTEGER, created REAL, updated REAL
        );
        CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY, experiment_id INTEGER, run_dir TEXT, pid INTEGER, pid_start REAL,
            wrapper_pid INTEGER, wrapper_start REAL, slot TEXT, log_path TEXT, state TEXT, exit_code INTEGER,
            started REAL, ended REAL
        );
        CREATE TABLE IF NOT EXISTS approvals (
            id INTEGER PRIMARY KEY, session_id INTEGER, experiment_id INTEGER, kind TEXT, payload TEXT,
            state TEXT, who TEXT, decided REAL, created REAL
        );
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY, t REAL, session_id INTEGER, experiment_id INTEGER, kind TEXT, message TEXT,
            data TEXT
        );
        CREATE INDEX IF NOT EXISTS idx_exp_status ON experiments(status);
        CREATE INDEX IF NOT EXISTS idx_jobs_state ON jobs(state);
        CREATE INDEX IF NOT EXISTS idx_appr_state ON approvals(state);
        """
    )


def _v2(db: sqlite_utils.Database) -> None:
    """v2: the learning signal and bookkeeping columns (stage, reward, reruns, usage), approval feedback."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    cols = {c.name for c in exp.columns}
    for name, typ in [
        ("stage", str), ("reward", float), ("rerun_of", int), ("loss_curve", str), ("usage", str),
        ("error", str), ("isolation", str), ("attempts", int), ("policy", str), ("log_tail", str),
        ("depth", int), ("protected_changed", str),
    ]:
        if name not in cols:
            exp.add_column(name, typ)
    appr = db["approvals"]
    assert isinstance(appr, sqlite_utils.db.Table)
    if "feedback" not in {c.name for c in appr.columns}:
        appr.add_column("feedback", str)
    sess = db["sessions"]
    assert isinstance(sess, sqlite_utils.db.Table)
    scols = {c.name for c in sess.columns}
    for name, typ in [("noise_floor", float), ("cost", float), ("pid", int)]:
        if name not in scols:
            sess.add_column(name, typ)


def _v3(db: sqlite_utils.Database) -> None:
    """v3: `settled` marks a finished run whose verdict (kept/discarded, fix, confirmation) has been acted on, so a
    crash between a run's analysis and its verdict is completed on restart instead of forgotten."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    if "settled" not in {c.name for c in exp.columns}:
        exp.add_column("settled", int)
    sess = db["sessions"]
    assert isinstance(sess, sqlite_utils.db.Table)
    if "unsafe" not in {c.name for c in sess.columns}:
        sess.add_column("unsafe", int)  # started with --unsafe-no-sandbox: wakes keep that choice
    db.execute("UPDATE experiments SET settled = 1 WHERE run_result IS NOT NULL")


def _v4(db: sqlite_utils.Database) -> None:
    """v4: jobs on a scheduler (SLURM, Ray): which backend, the scheduler's job id and the name it was submitted
    under (found again after a crash), its last known state and node, when the wrapper really started (queued time
    = run_started - started), and how the scheduler says it ended when the wrapper could not (node failure...)."""
    jobs = db["jobs"]
    assert isinstance(jobs, sqlite_utils.db.Table)
    cols = {c.name for c in jobs.columns}
    for name, typ in [("backend", str), ("sched_id", str), ("sched_name", str), ("sched_state", str),
                      ("node", str), ("run_started", float), ("ending", str)]:
        if name not in cols:
            jobs.add_column(name, typ)


def _v5(db: sqlite_utils.Database) -> None:
    """v5: the experience of every decision step (experience.py): what the policy saw and could do when it decided,
    written then, and the outcome (reward and its parts, stage, duration) written when the run settles."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS steps (
            id INTEGER PRIMARY KEY, session_id INTEGER, experiment_id INTEGER, t REAL, kind TEXT, policy TEXT,
            state TEXT, candidates TEXT, chosen INTEGER, tool TEXT, messages TEXT, answer TEXT,
            reward REAL, reward_parts TEXT, stage TEXT, seconds REAL, outcome TEXT, failure_class TEXT,
            settled_t REAL
        );
        CREATE INDEX IF NOT EXISTS idx_steps_exp ON steps(experiment_id);
        """
    )


def _v6(db: sqlite_utils.Database) -> None:
    """v6: an experiment's own training command (when it changes a command-line setting), a digest of its run's
    output (to recognise a run identical to its parent's: "no effect"), and how the session varies seeds."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    cols = {c.name for c in exp.columns}
    for name in ("command", "digest"):
        if name not in cols:
            exp.add_column(name, str)
    sess = db["sessions"]
    assert isinstance(sess, sqlite_utils.db.Table)
    if "seeding" not in {c.name for c in sess.columns}:
        sess.add_column("seeding", str)


def _v7(db: sqlite_utils.Database) -> None:
    """v7: a best kept on one seed has a status of its own, `unconfirmed` (it was `kept` with a sentence in `error`,
    recognised by equality, so rewording the sentence would have broken old databases)."""
    db.execute("UPDATE experiments SET status = ?, error = NULL WHERE status = ? AND error = ?",
               [Status.UNCONFIRMED, Status.KEPT, V4_UNCONFIRMED_NOTE])


def _v8(db: sqlite_utils.Database) -> None:
    """v8: the session's plan (agent/plan.py): its phases with their budgets, when it was approved, which phases
    the policy had nothing left to try in; and the phase each experiment was proposed in (progress is counted from
    the experiments, so a crash cannot make the count drift)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS plans (
            id INTEGER PRIMARY KEY, created REAL, approved REAL, phases TEXT, diagnosis TEXT, exhausted TEXT,
            since_exp INTEGER
        );
        """
    )
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    if "phase" not in {c.name for c in exp.columns}:
        exp.add_column("phase", str)


def _v9(db: sqlite_utils.Database) -> None:
    """v9: the run time the policy predicted for an experiment (its cost model's, from the run it changes): the
    deadline and the compute budget judge each run by its own prediction, not its parent's duration
    (agent/time_budget.py)."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    if "predicted_s" not in {c.name for c in exp.columns}:
        exp.add_column("predicted_s", float)


def _v10(db: sqlite_utils.Database) -> None:
    """v10: the deadline a plan was drafted for (`nightlab plan --hours` / `--until`): its budgets are trimmed to
    what can run before it, and a `nightlab run` without a deadline of its own ends by it."""
    plans = db["plans"]
    assert isinstance(plans, sqlite_utils.db.Table)
    if "deadline" not in {c.name for c in plans.columns}:
        plans.add_column("deadline", float)


def _v11(db: sqlite_utils.Database) -> None:
    """v11: how an experiment's run time was predicted (states.Pricing): a knob move's cost model, the code's cost
    before and after its edit, or — where the code's structure could not be read — its parent's measured time, so
    that what the deadline judged a run by is on the record."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    if "priced" not in {c.name for c in exp.columns}:
        exp.add_column("priced", str)


def _v12(db: sqlite_utils.Database) -> None:
    """v12: of a run's seconds, those that do not grow with its training length (before its first optimizer step and
    after its last, as the progress hook timed them): the cost model scales only the rest (agent/analysis.py)."""
    exp = db["experiments"]
    assert isinstance(exp, sqlite_utils.db.Table)
    if "fixed_s" not in {c.name for c in exp.columns}:
        exp.add_column("fixed_s", float)


MIGRATIONS: list[tuple[int, Callable[[sqlite_utils.Database], None]]] = [
    (1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5), (6, _v6), (7, _v7), (8, _v8), (9, _v9), (10, _v10), (11, _v11),
    (12, _v12),
]


class StoreDamaged(NightlabError):
    """The store exists but cannot be what it should be: never mistaken for a new one (that would forget every
    experiment and let recovery delete their branches). The message says what is wrong and how to recover."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(damage_message(path, what))
        self.what = what


def damage(path: Path) -> str:
    """What is wrong with an existing store file, in a phrase ("" when it is absent or looks like a database).

    A store is created and given its header in one step (WAL mode writes it at once), so an empty file is damage
    (a full disk, a crash of the file system, a copy gone wrong); a just-created one gets a moment to be written.
    Only stat() here, never an open: closing any descriptor of the file drops every POSIX lock this process's
    SQLite connections hold on it, and another process then writes under a reader that thinks it holds a lock
    ("database disk image is malformed"). A file that is not a database is SQLite's to say (Store's "file is not
    a database")."""
    for _ in range(40):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return ""
        if not stat.S_ISREG(st.st_mode):
            return "it is not a regular file"
        if st.st_size == 0 and time.time() - st.st_mtime < 2.0:
            time.sleep(0.05)  # being created by another nightlab process right now
            continue
        if st.st_size == 0:
            return "it is empty: 0 bytes"
        return ""
    return "it is empty: 0 bytes"


def damage_message(path: Path, what: str) -> str:
    return (f"{path}: the store is damaged ({what}); nightlab will not start a new one over it, which would forget "
            "your experiments. Run `nightlab doctor` to move it aside (nothing is deleted, your nightlab branches "
            "stay) and start afresh, or put back a copy from a backup")


@contextlib.contextmanager
def _migration_lock(db_path: Path) -> Iterator[None]:
    """An exclusive flock on `<store>.migrate-lock` (a file of its own: closing any descriptor of the database file
    itself would drop SQLite's own POSIX locks on it)."""
    lock = db_path.with_name(db_path.name + ".migrate-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class Store:
    """Typed access to the project database. Safe to open from several processes at once (WAL, busy timeout).

    Opening a store that exists but is damaged (empty, not a database, unreadable schema) raises StoreDamaged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        what = damage(self.path)
        if what:
            raise StoreDamaged(self.path, what)
        # a new store is set up (WAL, schema) by one opener at a time: switching a new file to WAL takes a lock
        # that does not wait for the busy timeout, and the loser was told its store was "damaged"
        new = not self.path.exists() or self.path.stat().st_size == 0
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            with _migration_lock(self.path) if new else contextlib.nullcontext():
                conn.execute("PRAGMA busy_timeout = 30000")
                self.db = sqlite_utils.Database(conn)
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
                self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                self.migrate(locked=new)
        except sqlite3.DatabaseError as err:
            conn.close()
            what = "it is not an SQLite database" if "file is not a database" in str(err) else str(err)
            raise StoreDamaged(self.path, what) from None

    # ------------------------------------------------------------------------------------------- schema
    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, locked: bool = False) -> None:
        """Bring the schema up to date. Two processes (or a TUI's poller and its engine) may open a new store at the
        same moment: the steps add columns after checking they are missing, which is not atomic, and the loser of
        that race used to be told its store was damaged. So migrating is one opener at a time, under a lock file
        beside the store, and the version is read again under it (`locked`: the caller holds it already)."""
        if self.version < SCHEMA_VERSION:
            with contextlib.nullcontext() if locked else _migration_lock(self.path):
                current = self.version  # again: another opener may have migrated while this one waited
                for version, step in MIGRATIONS:
                    if version > current:
                        with self.db.conn:
                            step(self.db)
                            self.db.execute(f"PRAGMA user_version = {version}")
        if self.version > SCHEMA_VERSION:
            raise NightlabError(f"{self.path}: written by a newer nightlab (schema {self.version}); upgrade nightlab")

    def close(self) -> None:
        self.db.conn.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Writes that land together or not at all. The store is in autocommit mode, so each write is its own
        transaction; a process killed between two that belong together (an experiment marked started, its job, the
        budget it spends) left the first without the others — a launch re-tried as free, one run past the budget.
        Nested use joins the outer transaction."""
        if self.db.conn.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            # a failed COMMIT (a full disk) must not leave the transaction open: later writes would join it and
            # never land, and its lock would keep every other process out; SQLite may have rolled back already
            if self.db.conn.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def integrity_ok(self) -> bool:
        return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # ------------------------------------------------------------------------------------------- plans
    def latest_plan(self, approved: bool = False) -> dict[str, Any] | None:
        """The newest plan row (`approved`: the newest approved one; JSON columns decoded), None when there is
        none."""
        where = "WHERE approved IS NOT NULL " if approved else ""
        row = next(self._rows(f"SELECT * FROM plans {where}ORDER BY id DESC LIMIT 1"), None)
        if row is None:
            return None
        for k in ("phases", "exhausted"):
            row[k] = json.loads(row[k]) if row.get(k) else []
        return row

    def add_plan(self, **values: Any) -> int:
        return self._insert("plans", {"created": time.time(), **values})

    def update_plan(self, pid: int, **changes: Any) -> None:
        self._update("plans", pid, changes)

    def runs_by_phase(self, since_exp: int) -> dict[str, int]:
        """Experiments of each plan phase after experiment `since_exp` that run or ran (one still waiting for a
        person, refused or rejected has used no run)."""
        rows = self._rows("SELECT phase, count(*) AS n FROM experiments WHERE id > ? AND phase IS NOT NULL "
                          "AND status NOT IN (?, ?) GROUP BY phase", (since_exp, Status.REJECTED, Status.PROPOSED))
        return {r["phase"]: int(r["n"]) for r in rows}

    def last_experiment_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM experiments").fetchone()[0])

    # ------------------------------------------------------------------------------------------- helpers
    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cur = self.db.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            [_enc(v) for v in row.values()],
        )
        return int(cur.lastrowid or 0)

    def _update(self, table: str, pk: int, changes: dict[str, Any]) -> None:
        if not changes:
            return
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*map(_enc, changes.values()), pk])

    def _rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Iterator[dict[str, Any]]:
        return self.db.query(sql, params)

    # ------------------------------------------------------------------------------------------- sessions
    def create_session(self, project: str, mode: Mode, policy: str, budget: int, base_commit: str | None,
                       base_branch: str | None, min_id: int = 0) -> Session:
        """A new session; its id is at least `min_id` (the engine passes one past the sessions that already have
        branches in the repository, so a new store never reuses a branch name of an old one)."""
        now = time.time()
        top = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM sessions").fetchone()[0])
        sid = self._insert("sessions", {
            **({"id": min_id} if min_id > top else {}),
            "project": project, "created": now, "updated": now, "mode": mode, "policy": policy, "budget": budget,
            "runs_started": 0, "state": SessionState.ACTIVE, "wake_conditions": "[]", "base_commit": base_commit,
            "base_branch": base_branch, "cost": 0.0,
        })
        self.event(EventKind.SESSION, f"session {sid} started ({mode}, budget {budget}, policy {policy})",
                   session_id=sid)
        return self.session(sid)

    def session(self, sid: int) -> Session:
        rows = list(self._rows("SELECT * FROM sessions WHERE id = ?", (sid,)))
        if not rows:
            raise KeyError(sid)
        return Session.from_row(rows[0])

    def latest_session(self) -> Session | None:
        rows = list(self._rows("SELECT * FROM sessions ORDER BY id DESC LIMIT 1"))
        return Session.from_row(rows[0]) if rows else None

    def update_session(self, sid: int, **changes: Any) -> None:
        if "wake_conditions" in changes:
            changes["wake_conditions"] = json.dumps(changes["wake_conditions"])
        changes["updated"] = time.time()
        self._update("sessions", sid, changes)

    def add_cost(self, sid: int, cost: float) -> None:
        self.db.execute("UPDATE sessions SET cost = COALESCE(cost, 0) + ? WHERE id = ?", [cost, sid])

    # ------------------------------------------------------------------------------------------- experiments
    def add_experiment(self, **values: Any) -> Experiment:
        values = _shown(values)
        now = time.time()
        values.setdefault("status", Status.PROPOSED)
        values.update(created=now, updated=now)
        eid = self._insert("experiments", values)
        return self.experiment(eid)

    def experiment(self, eid: int) -> Experiment:
        rows = list(self._rows("SELECT * FROM experiments WHERE id = ?", (eid,)))
        if not rows:
            raise KeyError(eid)
        return Experiment.from_row(rows[0])

    def find_experiment(self, eid: int) -> Experiment | None:
        try:
            return self.experiment(eid)
        except KeyError:
            return None

    def experiments(self, where: str = "", params: tuple[Any, ...] = ()) -> list[Experiment]:
        """Every experiment in id order (`where`: an ad-hoc SQL condition; the agent uses the named queries)."""
        sql = "SELECT * FROM experiments" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [Experiment.from_row(r) for r in self._rows(sql, params)]

    def experiments_in(self, *statuses: Status) -> list[Experiment]:
        """Experiments with one of these statuses, in id order."""
        return self.experiments(f"status IN ({', '.join('?' for _ in statuses)})", tuple(statuses))

    def active_experiments(self) -> list[Experiment]:
        """Experiments the engine still owes a step: proposed, approved, queued or running."""
        return self.experiments_in(*sorted(ACTIVE))

    def baseline_experiment(self) -> Experiment | None:
        """The project's baseline: the first one whose branch could be made (one refused for want of a commit, on
        waking after a crash, is replaced by a new one)."""
        rows = self.experiments("kind = ? AND status != ?", (Kind.BASELINE, Status.REJECTED))
        return rows[0] if rows else None

    def reruns_of(self, exp_id: int) -> list[Experiment]:
        """The seed re-runs of an experiment (noise-floor runs of the baseline, confirmations of a new best)."""
        return self.experiments("rerun_of = ? AND kind = ?", (exp_id, Kind.RERUN))

    def proposals_on(self, exp_id: int) -> list[Experiment]:
        """Hypotheses built on an experiment (its children other than its seed re-runs): fixes of a failed run."""
        return self.experiments("parent_id = ? AND kind != ?", (exp_id, Kind.RERUN))

    def chain_base(self, e: Experiment) -> str | None:
        """The commit an experiment's chain of parents started from (its baseline's: the user's branch then)."""
        cur = e
        while cur.parent_id is not None:
            nxt = self.find_experiment(cur.parent_id)
            if nxt is None:
                break
            cur = nxt
        return cur.commit_sha

    def unsettled_results(self) -> list[Experiment]:
        """Finished runs whose verdict was not acted on (a crash between the analysis and the verdict)."""
        return self.experiments("run_result IS NOT NULL AND COALESCE(settled, 0) = 0 AND status NOT IN (?, ?)",
                                (Status.QUEUED, Status.RUNNING))

    def unmaterialised(self) -> list[Experiment]:
        """Experiments recorded on their way to a run whose branch and commit were never made (a crash)."""
        return self.experiments("status IN (?, ?, ?) AND commit_sha IS NULL",
                                (Status.PROPOSED, Status.APPROVED, Status.QUEUED))

    def update_experiment(self, eid: int, **changes: Any) -> None:
        changes = _shown(changes)
        changes["updated"] = time.time()
        self._update("experiments", eid, changes)

    # ------------------------------------------------------------------------------------------- jobs
    def add_job(self, experiment_id: int, run_dir: str, log_path: str, slot: str | None) -> Job:
        jid = self._insert("jobs", {
            "experiment_id": experiment_id, "run_dir": run_dir, "log_path": log_path, "slot": slot,
            "state": JobState.STARTING, "started": time.time(),
        })
        return self.job(jid)

    def job(self, jid: int) -> Job:
        return Job.from_row(next(iter(self._rows("SELECT * FROM jobs WHERE id = ?", (jid,)))))

    def jobs(self, state: JobState | None = None, experiment_id: int | None = None) -> list[Job]:
        cond: list[str] = []
        params: list[Any] = []
        if state is not None:
            cond.append("state = ?")
            params.append(state)
        if experiment_id is not None:
            cond.append("experiment_id = ?")
            params.append(experiment_id)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(cond) if cond else "") + " ORDER BY id"
        return [Job.from_row(r) for r in self._rows(sql, params)]

    def open_jobs(self) -> list[Job]:
        """Jobs whose process was started and has not been seen to end."""
        states = sorted(OPEN_JOB_STATES)
        return [Job.from_row(r) for r in self._rows(
            f"SELECT * FROM jobs WHERE state IN ({', '.join('?' for _ in states)})", states)]

    def latest_job(self, experiment_id: int) -> Job | None:
        rows = list(self._rows("SELECT * FROM jobs WHERE experiment_id = ? ORDER BY id DESC LIMIT 1", (experiment_id,)))
        return Job.from_row(rows[0]) if rows else None

    def update_job(self, jid: int, **changes: Any) -> None:
        self._update("jobs", jid, changes)

    # ------------------------------------------------------------------------------------------- approvals
    def add_approval(self, kind: ApprovalKind, payload: dict[str, Any], session_id: int | None,
                     experiment_id: int | None) -> Approval:
        aid = self._insert("approvals", {
            "session_id": session_id, "experiment_id": experiment_id, "kind": kind, "payload": json.dumps(payload),
            "state": ApprovalState.PENDING, "created": time.time(),
        })
        self.event(EventKind.APPROVAL, f"waiting for approval: {kind} #{experiment_id or ''}".rstrip(" #"),
                   session_id=session_id, experiment_id=experiment_id, data={"approval_id": aid, "kind": kind})
        return self.approval(aid)

    def approval(self, aid: int) -> Approval:
        return Approval.from_row(next(iter(self._rows("SELECT * FROM approvals WHERE id = ?", (aid,)))))

    def approvals(self, state: ApprovalState | None = ApprovalState.PENDING) -> list[Approval]:
        if state is None:
            return [Approval.from_row(r) for r in self._rows("SELECT * FROM approvals ORDER BY id")]
        rows = self._rows("SELECT * FROM approvals WHERE state = ? ORDER BY id", (state,))
        return [Approval.from_row(r) for r in rows]

    def approvals_of(self, *, kind: ApprovalKind, experiment_id: int | None = None,
                     session_id: int | None = None) -> list[Approval]:
        """Every approval (any state) of this kind, for one experiment and/or one session, oldest first."""
        cond: list[str] = ["kind = ?"]
        params: list[Any] = [kind]
        if experiment_id is not None:
            cond.append("experiment_id = ?")
            params.append(experiment_id)
        if session_id is not None:
            cond.append("session_id = ?")
            params.append(session_id)
        rows = self._rows(f"SELECT * FROM approvals WHERE {' AND '.join(cond)} ORDER BY id", params)
        return [Approval.from_row(r) for r in rows]

    def pending_approval(self, *, kind: ApprovalKind | None = None,
                         experiment_id: int | None = None) -> Approval | None:
        """The oldest pending approval of this kind and/or for this experiment, if any."""
        for a in self.approvals(ApprovalState.PENDING):
            if (kind is None or a.kind == kind) and (experiment_id is None or a.experiment_id == experiment_id):
                return a
        return None

    def decide(self, aid: int, state: ApprovalState, who: str, feedback: str | None = None) -> bool:
        """Resolve a pending approval; False if it was already decided (first decision wins)."""
        cur = self.db.execute(
            "UPDATE approvals SET state = ?, who = ?, feedback = ?, decided = ? WHERE id = ? AND state = ?",
            [state, who, feedback, time.time(), aid, ApprovalState.PENDING],
        )
        return cur.rowcount == 1

    # ------------------------------------------------------------------------------------------- events
    def event(self, kind: EventKind, message: str, *, session_id: int | None = None, experiment_id: int | None = None,
              data: dict[str, Any] | None = None) -> int:
        return self._insert("events", {
            "t": time.time(), "session_id": session_id, "experiment_id": experiment_id, "kind": kind,
            "message": printable(message), "data": json.dumps(data or {}),
        })

    def events(self, after_id: int = 0, limit: int = 1000, session_id: int | None = None) -> list[dict[str, Any]]:
        """Events after `after_id` in order (`limit` < 0: all of them), optionally of one session only."""
        if session_id is None:
            return list(self._rows("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)))
        return list(self._rows("SELECT * FROM events WHERE id > ? AND session_id = ? ORDER BY id LIMIT ?",
                               (after_id, session_id, limit)))

    # ------------------------------------------------------------------------------------------- steps
    STEP_JSON = ("state", "candidates", "messages", "answer", "reward_parts")

    def add_step(self, **values: Any) -> int:
        """A decision step as experience.py records it (JSON fields given as Python values)."""
        return self._insert("steps", values)

    def update_step(self, step_id: int, **changes: Any) -> None:
        self._update("steps", step_id, changes)

    def steps(self, *, session_id: int | None = None, experiment_id: int | None = None,
              settled: bool | None = None) -> list[dict[str, Any]]:
        """Decision steps in the order they were taken, JSON fields decoded: all, or those of one session, of one
        experiment, only the settled ones (`settled=True`: their outcome is written) or only the open ones."""
        cond: list[str] = []
        params: list[Any] = []
        if session_id is not None:
            cond.append("session_id = ?")
            params.append(session_id)
        if experiment_id is not None:
            cond.append("experiment_id = ?")
            params.append(experiment_id)
        if settled is not None:
            cond.append("settled_t IS NOT NULL" if settled else "settled_t IS NULL")
        out = []
        for row in self._rows("SELECT * FROM steps" + (" WHERE " + " AND ".join(cond) if cond else "") + " ORDER BY id",
                              params):
            for k in self.STEP_JSON:
                raw = row.get(k)
                row[k] = json.loads(raw) if isinstance(raw, str) and raw else None
            out.append(row)
        return out


def _enc(v: Any) -> Any:
    if isinstance(v, dict | list | tuple):
        return json.dumps(v)
    return v


# an experiment's text every front-end shows, written by a model or read from a job's output: stored printable
# (agent/terminal_text.py), so no job or reply reaches the user's terminal through the TUI or the console
_SHOWN_FIELDS = frozenset({"title", "rationale", "expected_effect", "diagnosis", "error", "log_tail"})


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    return {k: printable(v) if k in _SHOWN_FIELDS and isinstance(v, str) else v for k, v in values.items()}
