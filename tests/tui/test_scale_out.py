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


def test_the_projects_overview_lists_every_project_and_opens_one(populated: tuple[Path, Populated],
                                                                 tmp_path: Path) -> None:
    """`o` shows what `nightlab projects` shows; enter on another project opens it (run_tui starts its app)."""
    from textual.widgets import DataTable

    from nightlab.agent import projects
    from nightlab.tui.screens.projects import ProjectsScreen

    from tuikit import make_project

    root, _ = populated
    other = make_project(tmp_path / "other")
    gone = tmp_path / "gone"
    gone.mkdir()
    for r in (gone, other, root):
        projects.register(r)
    gone.rmdir()

    async def body() -> None:
        app = NightlabApp(root, start="never", grace_s=0.0, poll_s=0.1)
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_until(pilot, lambda: app.snapshot is not None, what="first snapshot")
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, ProjectsScreen)
                             and app.screen.query_one(DataTable).row_count == 3, what="three projects listed")
            table = app.screen.query_one(DataTable)
            cells = {str(table.get_row_at(i)[0]).strip("▸ ").strip(): table.get_row_at(i) for i in range(3)}
            assert str(cells[str(root)][1]) == "STEP" and "2" in str(cells[str(root)][5])  # two approvals wait
            assert "missing" in str(cells[str(gone)][2])
            assert str(cells[str(other)][2]) == "no session"
            table.move_cursor(row=next(i for i in range(3) if str(other) in str(table.get_row_at(i)[0])))
            await pilot.press("enter")
            await wait_until(pilot, lambda: not app.is_running, what="the app handing over to the other project")
        assert app.next_root == other.resolve()

    run(body())
