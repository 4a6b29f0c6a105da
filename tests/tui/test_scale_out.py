"""The TUI across projects: a session waiting for another project's slot says so in the status bar."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.store import Store
from nightlab.sandbox.lease import SLOT_WAIT
from nightlab.tui.app import NightlabApp

from tuikit import Populated, run, wait_until


def test_the_status_bar_says_when_the_session_waits_for_another_projects_slot(
        populated: tuple[Path, Populated]) -> None:
    root, _ = populated
    store = Store(root / ".nightlab" / "nightlab.db")
    session = store.latest_session()
    assert session is not None
    store.update_session(session.id, state="hibernating",
                         wake_conditions=[f"{SLOT_WAIT} (2 of 2 slots held by other projects: /srv/other (2))"])

    async def body() -> None:
        app = NightlabApp(root, start="never", grace_s=0.0, poll_s=0.1)
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_until(pilot, lambda: app.snapshot is not None, what="first snapshot")
            await pilot.pause()
            assert "waiting for a slot another project holds" in app.main.query_one("#status").render().plain
            store.update_session(session.id, wake_conditions=["job of experiment #3 ends"])
            await wait_until(pilot, lambda: "waiting for a slot" not in app.main.query_one("#status").render().plain,
                             what="the wait cleared")

    run(body())
