"""Event kinds are an enum (states.EventKind) stored as their values: a row written before the enum, or by it, reads
the same, and no module emits a kind the enum does not name."""

from __future__ import annotations

import re
from pathlib import Path

from nightlab.agent.states import EventKind
from nightlab.agent.store import Store

PACKAGE = Path(__file__).resolve().parent.parent / "nightlab"


def test_a_kind_is_stored_as_its_plain_value_and_an_old_row_reads_the_same(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.event(EventKind.KEPT, "#1 is the new best", experiment_id=None)
    store.db.execute("INSERT INTO events (t, kind, message, data) VALUES (0, 'out_of_time', 'an old row', '{}')")
    rows = list(store.db.query("SELECT kind, typeof(kind) AS type FROM events ORDER BY id"))
    assert [(r["kind"], r["type"]) for r in rows] == [("kept", "text"), ("out_of_time", "text")]
    kinds = [ev["kind"] for ev in store.events()]
    assert kinds == [EventKind.KEPT, EventKind.OUT_OF_TIME] and EventKind(kinds[1]) is EventKind.OUT_OF_TIME


def test_every_kind_the_agent_emits_is_named_by_the_enum() -> None:
    literal = re.compile(r'\b(?:emit|\.event|_record)\(\s*"([a-z_]+)"')
    found = {(str(f.relative_to(PACKAGE)), m.group(1)) for f in (PACKAGE / "agent").rglob("*.py")
             for m in literal.finditer(f.read_text())}
    assert not found, f"event kinds written as strings, not EventKind: {sorted(found)}"
