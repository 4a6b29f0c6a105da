"""The TUI's words and figures as a person reads them (issue 18, item 14): why a proposal has not run, a stopped
run's reason said once, one way of writing a metric and a duration in every pane, a running job's time so far."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from nightlab.agent.states import ApprovalState
from nightlab.tui.screens.dialogs import ConfirmDialog
from nightlab.tui.widgets.details import DetailsPane
from nightlab.tui.widgets.events import EventsPane
from nightlab.tui.widgets.experiments import ExperimentTable
from nightlab.tui.widgets.logpane import LogTail

from tuikit import Populated, git, loaded, make_app, make_project, run, select, store_of, wait_until


def details_text(app: Any, exp_id: int) -> str:
    con = Console(width=120, record=True, file=io.StringIO())
    con.print(app.main.query_one(DetailsPane)._body(app.snapshot, exp_id))
    return " ".join(con.export_text().split())


def events_text(app: Any) -> str:
    return " ".join(" ".join(strip.text for strip in app.main.query_one(EventsPane).lines).split())


def notes(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_a_proposal_that_has_not_run_says_why(populated: tuple[Path, Populated]) -> None:
    """The log pane of a run never made: "#3 has not run yet (rejected)" read as if it would still run."""
    root, ids = populated
    st = store_of(root)
    st.decide(ids.hypothesis_approval, ApprovalState.REJECTED, "test", "too small")
    st.update_experiment(ids.proposed, status="rejected", error="rejected: too small")
    queued = st.add_experiment(session_id=ids.session, parent_id=ids.best, title="LR = 0.35", kind="hyperparameter",
                               status="queued", seed=0, policy="builtin").id
    st.close()

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            log = app.main.query_one(LogTail)
            for exp_id, said in ((ids.proposed, "it was rejected"), (queued, "it is queued")):
                await select(pilot, exp_id)
                assert log.placeholder == f"#{exp_id} has not run ({said})"
                assert log.border_title == f"Log #{exp_id}"
                await pilot.press("l")  # the full log: the same reason, and no viewer on nothing
                await wait_until(pilot, lambda: any("has not run" in n for n in notes(app)), what="the notice")
                assert notes(app)[-1] == f"#{exp_id} has not run ({said})."
                assert app.screen is app.main
                app.clear_notifications()
            assert "has not run yet" not in details_text(app, ids.proposed)

    run(body())


def test_a_metric_and_a_duration_read_alike_in_every_pane(populated: tuple[Path, Populated]) -> None:
    """A best of exactly 0.6 read `(acc 0.6)` in the queue beside 0.6000 elsewhere; a time wrapped its unit."""
    from nightlab.tui.data import session_end_text

    root, ids = populated
    st = store_of(root)
    st.update_experiment(ids.best, metric=0.6, seconds=13.8)
    st.update_experiment(ids.baseline, metric=0.5)
    st.close()
    db = sqlite3.connect(root / ".nightlab" / "nightlab.db")  # the promote request as the engine made it for 0.6
    with db:
        db.execute("UPDATE approvals SET payload = ? WHERE id = ?",
                   (json.dumps({"metric": 0.6, "baseline": 0.5}), ids.promote_approval))
    db.close()

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            table = app.main.query_one(ExperimentTable)
            await wait_until(pilot, lambda: "0.6000" in str(table.get_cell(str(ids.best), "acc")), what="the row")
            queue = app.main.query_one("#approvals")
            promote = " ".join(str(c) for c in queue.get_row(str(ids.promote_approval)))
            assert "(acc 0.6000)" in promote and "(acc 0.6)" not in promote, promote
            details = details_text(app, ids.best)
            assert "acc 0.6000" in details and "time 13.8s" in details, details
            assert "time 13.8 s" not in details
            assert "(acc 0.6000, +0.1000 vs baseline)" in session_end_text(app.snapshot)
            await pilot.press("t")  # the ranked table has a time column
            await wait_until(pilot, lambda: table.view == "ranked", what="ranked")
            assert str(table.get_cell(str(ids.best), "time")) == "13.8s"

    run(body())


def test_a_running_job_shows_its_time_so_far_everywhere(populated: tuple[Path, Populated]) -> None:
    """`time —` until the run ended: in the details and in the ranked table's time column."""
    root, ids = populated
    st = store_of(root)
    st.update_experiment(ids.proposed, status="running")
    run_dir = root / ".nightlab" / "runs" / str(ids.proposed)
    run_dir.mkdir(parents=True)
    (run_dir / "output.log").write_text("step 1 loss 0.9\n")
    job = st.add_job(ids.proposed, str(run_dir), str(run_dir / "output.log"), "cpu0")
    st.update_job(job.id, state="running", started=time.time() - 75.0)
    st.close()

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.proposed)
            details = details_text(app, ids.proposed)
            assert "time 1m1" in details and "time —" not in details, details
            assert " · running 1m1" in app.main.query_one(LogTail).border_title
            table = app.main.query_one(ExperimentTable)
            await pilot.press("t")
            await wait_until(pilot, lambda: table.view == "ranked", what="ranked")
            shown = str(table.get_cell(str(ids.proposed), "time"))
            assert shown.startswith("1m1") and shown != "—", shown

    run(body())


def test_a_run_stopped_from_the_tui_says_so_once(tmp_path: Path) -> None:
    """A real job stopped with x: its reason reads "stopped by the user (TUI)" in the details and the events, never
    wrapped in "stopped by nightlab or the user: …"; the session's end does not claim a baseline it never measured."""
    root = make_project(tmp_path / "slow")
    (root / "train.py").write_text("import time\nprint('step 1 loss 0.9', flush=True)\ntime.sleep(60)\n"
                                   "LR = 0.1\nprint('acc=0.5')\n")
    git(root, "commit", "-qam", "slow")

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
            await pilot.press("y")
            # a CI machine running other suites once took more than 30 s to start the engine: a generous bound
            await wait_until(pilot, lambda: app.snapshot is not None and bool(app.snapshot.running_ids), timeout=90,
                             what="the baseline running")
            exp_id = app.snapshot.running_ids[0]
            await select(pilot, exp_id)
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="stop?")
            await pilot.press("y")
            await wait_until(pilot, lambda: app.snapshot is not None and not app.snapshot.open_jobs
                             and app.snapshot.experiments[exp_id].diagnosis is not None, timeout=60,
                             what="the stopped run recorded")
            await wait_until(pilot, lambda: "stopped by the user (TUI)" in events_text(app), what="the event")
            for text in (details_text(app, exp_id), events_text(app)):
                assert text.count("stopped by the user (TUI)") == 1, text
                assert "stopped by nightlab or the user" not in text, text
            await wait_until(pilot, lambda: any("session is done" in n for n in notes(app)), what="the session's end")
            ended = [n for n in notes(app) if "session is done" in n]
            assert all("beat the baseline" not in n and "baseline has no result" in n for n in ended), ended
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, timeout=30, what="exit")

    run(body())


def test_the_diff_of_a_proposal_is_not_warned_about_as_a_verdict(populated: tuple[Path, Populated]) -> None:
    """`d` on a proposal read "⚠ it was proposed; the best is #1": a warning meant for a run that was set aside."""
    from textual.widgets import Static

    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            for exp_id, warned in ((ids.proposed, False), (ids.worse, True)):
                await select(pilot, exp_id)
                await pilot.press("d")
                await wait_until(pilot, lambda: getattr(app.screen, "ready", False), what="the diff")
                header = str(app.screen.query_one("#review-header", Static).render())
                assert ("⚠ it was" in header) == warned, header
                assert "it was proposed" not in header
                await pilot.press("escape")
                await wait_until(pilot, lambda: app.screen is app.main, what="back")

    run(body())


def test_the_setup_screen_once_set_up_no_longer_says_it_is_not(tmp_path: Path) -> None:
    """After init, "nightlab is set up" stood above "no nightlab.toml"; and at 80 columns its footer is compact."""
    from textual.widgets import Static

    from nightlab.tui.screens.setup import InitScreen

    root = make_project(tmp_path / "fresh", configured=False)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, InitScreen), what="the setup offer")
            screen = app.screen
            assert "no nightlab.toml" in str(screen.query_one("#setup-reason", Static).render())
            # the class follows the screen's size, which a loaded machine lays out a frame after the mount
            await wait_until(pilot, lambda: screen.has_class("-narrow"), what="the 80-column layout")
            await pilot.press("i")
            await wait_until(pilot, lambda: screen.done, timeout=60, what="init")
            shown = [str(w.render()) for w in screen.query(Static) if w.display]
            assert not any("no nightlab.toml" in text for text in shown), shown
            assert any("nightlab is set up" in text for text in shown)

    run(body())
