from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from nightlab.agent import store as store_mod
from nightlab.agent.states import (
    ApprovalKind,
    ApprovalState,
    FailureClass,
    JobState,
    Kind,
    Mode,
    RunResult,
    SessionState,
    Status,
)
from nightlab.agent.store import SCHEMA_VERSION, Store


def test_fresh_store_has_current_schema_and_wal(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    assert s.version == SCHEMA_VERSION
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"sessions", "experiments", "jobs", "approvals", "events"} <= set(s.db.table_names())
    assert s.integrity_ok()


def test_migration_from_v1_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    store_mod._v1(db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO experiments (id, title, status, metric, knobs) VALUES (1, 'old one', 'kept', 0.5, '{}')")
    db.execute("INSERT INTO approvals (id, kind, state, payload) VALUES (1, 'hypothesis', 'pending', '{}')")
    conn.commit()
    conn.close()

    s = Store(path)
    assert s.version == SCHEMA_VERSION
    e = s.experiment(1)
    assert e.title == "old one" and e.metric == 0.5 and e.status == "kept"
    assert e.stage is None and e.reward is None  # v2 columns exist, empty
    s.update_experiment(1, stage="clean_exit", reward=0.7)
    assert s.experiment(1).reward == 0.7
    assert s.decide(1, "rejected", "me", "too risky")
    assert s.approval(1).feedback == "too risky"
    s.close()
    assert Store(path).version == SCHEMA_VERSION  # migrating again is a no-op


def test_experiment_round_trip_and_first_decision_wins(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    sess = s.create_session("/p", "step", "builtin", 5, "abc", "main")
    e = s.add_experiment(session_id=sess.id, title="lr up", knobs={"LR": 0.3}, curve=[[1, 0.5]], seed=3)
    got = s.experiment(e.id)
    assert got.knobs == {"LR": 0.3} and got.curve == [[1, 0.5]] and got.seed == 3 and got.status == "proposed"
    a = s.add_approval("hypothesis", {"title": "lr up"}, sess.id, e.id)
    assert s.decide(a.id, "approved", "tui")
    assert not s.decide(a.id, "rejected", "cli")
    assert s.approval(a.id).state == "approved"
    kinds = [ev["kind"] for ev in s.events()]
    assert kinds[0] == "session" and "approval" in kinds


def test_two_connections_see_each_other(tmp_path: Path) -> None:
    a = Store(tmp_path / "db.sqlite")
    b = Store(tmp_path / "db.sqlite")
    sess = a.create_session("/p", "autonomous", "builtin", 5, None, None)
    b.update_session(sess.id, mode="step")
    assert a.session(sess.id).mode == "step"


def _store_at(path: Path, version: int) -> sqlite_utils.Database:
    """A database as an older nightlab wrote it: its migrations up to `version`, nothing after."""
    conn = sqlite3.connect(path)
    db = sqlite_utils.Database(conn)
    for v, step in store_mod.MIGRATIONS:
        if v <= version:
            step(db)
    db.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    return db


def test_migration_from_v4_gives_unconfirmed_its_own_state(tmp_path: Path) -> None:
    """Schemas 4 to 6 marked a best kept on one seed with status `kept` and a sentence in `error`; schema 7 gives
    it the status `unconfirmed` and leaves every other row as it was."""
    path = tmp_path / "v4.sqlite"
    db = _store_at(path, 4)
    rows = [
        (1, "baseline", "kept", None, "succeeded"),
        (2, "hyperparameter", "kept", store_mod.V4_UNCONFIRMED_NOTE, "succeeded"),  # the one-seed best
        (3, "hyperparameter", "kept", None, "succeeded"),
        (4, "hyperparameter", "discarded", "0.5 vs best 0.6: no improvement", "succeeded"),
        (5, "rerun", "kept", None, "succeeded"),
        (6, "fix", "failed", None, "failed"),
    ]
    for eid, kind, status, error, result in rows:
        db.execute("INSERT INTO experiments (id, title, kind, status, error, run_result, failure_class, metric) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, 0.5)",
                   (eid, f"e{eid}", kind, status, error, result, "oom" if result == "failed" else None))
    db.execute("INSERT INTO sessions (id, mode, state) VALUES (1, 'autonomous', 'hibernating')")
    db.execute("INSERT INTO approvals (id, kind, state, payload) VALUES (1, 'promote', 'pending', '{}')")
    db.execute("INSERT INTO jobs (id, experiment_id, state) VALUES (1, 6, 'ended')")
    db.conn.commit()
    db.conn.close()

    s = Store(path)
    assert s.version == SCHEMA_VERSION == 12
    assert s.latest_plan() is None and s.runs_by_phase(0) == {}  # v8: the plan table and the phase column
    assert all(e.predicted_s is None for e in s.experiments())  # v9: a run's predicted seconds
    assert all(e.priced is None for e in s.experiments())  # v11: how they were predicted
    assert all(e.fixed_s is None for e in s.experiments())  # v12: the seconds that do not grow with the length
    got = {e.id: e for e in s.experiments()}
    assert (got[2].status, got[2].error) == (Status.UNCONFIRMED, None)
    assert [got[i].status for i in (1, 3, 4, 5, 6)] == ["kept", "kept", "discarded", "kept", "failed"]
    assert got[4].error == "0.5 vs best 0.6: no improvement"
    # read back as the named states, stored as their plain values
    assert isinstance(got[2].status, Status) and got[6].kind is Kind.FIX and got[6].run_result is RunResult.FAILED
    assert got[6].failure_class is FailureClass.OOM
    session = s.session(1)
    assert (session.mode, session.state) == (Mode.AUTONOMOUS, SessionState.HIBERNATING)
    assert s.approval(1).kind is ApprovalKind.PROMOTE and s.approval(1).state is ApprovalState.PENDING
    assert s.job(1).state is JobState.ENDED
    raw = s.db.execute("SELECT status, typeof(status) FROM experiments WHERE id = 2").fetchone()
    assert raw == ("unconfirmed", "text")
    s.close()
    assert Store(path).experiment(2).status == Status.UNCONFIRMED  # migrating again changes nothing


def test_a_failure_class_this_version_does_not_know_is_kept_as_written(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    e = s.add_experiment(title="x", status=Status.FAILED, failure_class="quantum_decoherence")
    assert s.experiment(e.id).failure_class == "quantum_decoherence"


def test_named_queries(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    sid = s.create_session("/p", Mode.STEP, "builtin", 5, None, None).id
    base = s.add_experiment(session_id=sid, kind=Kind.BASELINE, status=Status.KEPT, commit_sha="a",
                            run_result=RunResult.SUCCEEDED, settled=1)
    rerun = s.add_experiment(session_id=sid, kind=Kind.RERUN, rerun_of=base.id, parent_id=base.id,
                             status=Status.QUEUED, commit_sha="a")
    fix = s.add_experiment(session_id=sid, kind=Kind.FIX, parent_id=base.id, status=Status.PROPOSED)
    done = s.add_experiment(session_id=sid, kind=Kind.HYPERPARAMETER, parent_id=base.id, status=Status.SUCCEEDED,
                            commit_sha="b",
                            run_result=RunResult.SUCCEEDED, settled=0)
    assert s.baseline_experiment().id == base.id  # type: ignore[union-attr]
    assert [e.id for e in s.reruns_of(base.id)] == [rerun.id]
    assert [e.id for e in s.proposals_on(base.id)] == [fix.id, done.id]
    assert [e.id for e in s.active_experiments()] == [rerun.id, fix.id]
    assert [e.id for e in s.unmaterialised()] == [fix.id]  # recorded, never given a commit
    assert [e.id for e in s.unsettled_results()] == [done.id]  # a run whose verdict was not acted on
    assert [e.id for e in s.experiments_in(Status.KEPT, Status.SUCCEEDED)] == [base.id, done.id]
    a = s.add_approval(ApprovalKind.HYPOTHESIS, {}, sid, fix.id)
    assert s.pending_approval(kind=ApprovalKind.HYPOTHESIS, experiment_id=fix.id) == a
    s.decide(a.id, ApprovalState.REJECTED, "me", "no")
    assert s.pending_approval(experiment_id=fix.id) is None
    assert [x.state for x in s.approvals_of(kind=ApprovalKind.HYPOTHESIS, session_id=sid)] == ["rejected"]


def test_openers_racing_on_a_new_store_all_get_it(tmp_path: Path) -> None:
    """A TUI's poller and its engine (or two processes) open a new store at the same moment: each gets the store,
    none is told it is damaged (the schema's steps and the switch to WAL used to race: "duplicate column name")."""
    import threading

    from nightlab.agent.store import SCHEMA_VERSION, Store

    errors: list[str] = []

    def opener(path: Path, start: threading.Barrier) -> None:
        start.wait()
        try:
            s = Store(path)
            assert s.version == SCHEMA_VERSION
            s.close()
        except Exception as err:  # any failure is the finding
            errors.append(repr(err)[:200])

    for i in range(20):
        start = threading.Barrier(6)
        threads = [threading.Thread(target=opener, args=(tmp_path / f"s{i}.db", start)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_opening_the_store_does_not_import_pandas() -> None:
    """sqlite_utils imported pandas (installed here, as on many ML machines) at every nightlab start: half a second of
    CPU before the first command output or the TUI's first data. Once the store is loaded pandas imports as usual."""
    import subprocess
    import sys

    code = ("import sys, nightlab.agent.store; assert 'pandas' not in sys.modules, 'pandas imported'; "
            "import pandas; print(pandas.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "pandas", out.stderr


def test_writes_in_one_transaction_land_together_or_not_at_all(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Store.atomic: an error inside rolls every write back; a COMMIT that fails (a full disk) leaves no
    transaction open behind it, so later writes still land and other processes are not locked out."""
    s = Store(tmp_path / "db.sqlite")
    sid = s.create_session("/p", Mode.AUTONOMOUS, "builtin", 3, None, None).id
    with pytest.raises(RuntimeError), s.atomic():
        s.update_session(sid, runs_started=1)
        with s.atomic():  # nested: joins the outer transaction
            s.update_session(sid, budget=5)
        raise RuntimeError("between two writes")
    assert (s.session(sid).runs_started, s.session(sid).budget) == (0, 3)
    execute = s.db.execute

    def failing_commit(sql: str, *args: object) -> object:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return execute(sql, *args)

    monkeypatch.setattr(s.db, "execute", failing_commit)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"), s.atomic():
        s.update_session(sid, runs_started=2)
    monkeypatch.setattr(s.db, "execute", execute)
    assert not s.db.conn.in_transaction
    assert s.session(sid).runs_started == 0
    s.update_session(sid, runs_started=1)  # lands: no transaction was left open to swallow it
    other = sqlite3.connect(tmp_path / "db.sqlite", timeout=1)
    assert other.execute("SELECT runs_started FROM sessions WHERE id = ?", (sid,)).fetchone() == (1,)
    other.execute("UPDATE sessions SET budget = 4 WHERE id = ?", (sid,))  # not locked out
    other.commit()
    other.close()
