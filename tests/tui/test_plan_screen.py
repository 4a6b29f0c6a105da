"""`P` (and the command palette's "Show the plan") opens the session's plan, read through the desk's views."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from nightlab.agent.actions import FrontDesk
from nightlab.tui.screens.main import MainScreen
from nightlab.tui.screens.plan import NO_PLAN, PlanScreen

from tuikit import Populated, loaded, make_app, run, wait_until


def _body(app: object) -> str:
    return str(app.screen.query_one("#plan-body", Static).render())  # type: ignore[attr-defined]


def test_the_plan_screen_shows_the_approved_plan_and_its_progress(populated: tuple[Path, Populated]) -> None:
    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await pilot.press("P")  # opening it drafts the plan
            await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and "plan: draft" in _body(app),
                             timeout=60, what="the drafted plan")
            assert NO_PLAN not in _body(app) and "optimizer and learning rate" in _body(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="back on the main screen")
            commands = [c.title for c in app.get_system_commands(app.screen)]
            assert "Show the plan" in commands
            await pilot.press("P")
            await wait_until(pilot, lambda: "plan: draft" in _body(app), timeout=60, what="the draft again")
            await pilot.press("a")
            await wait_until(pilot, lambda: "plan: approved" in _body(app), timeout=60, what="the approved plan")
            text = _body(app)
            assert "0/" in text and "current" in text, text
            desk = FrontDesk(root)
            assert desk.status()["plan"]["approved"]  # what the engine follows
            desk.close()

    run(body())
