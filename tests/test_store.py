from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from nightlab.agent import store as store_mod
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
