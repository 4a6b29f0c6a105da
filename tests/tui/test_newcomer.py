"""The TUI as a new user meets it (issue 18): nothing traps or crashes, the screens say what is true, bad settings
are named. Pilot tests against a populated store; each one failed on the code before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightlab.agent.goal import Goal
from nightlab.tui.app import NightlabApp
from nightlab.tui.screens.dialogs import ErrorDialog
from nightlab.tui.screens.setup import InitScreen
from nightlab.tui.widgets.experiments import ExperimentTable

from tuikit import Populated, git, loaded, make_app, make_project, run, select, store_of, wait_until


def details_text(app: NightlabApp, exp_id: int) -> str:
    import io

    from rich.console import Console

    from nightlab.tui.widgets.details import DetailsPane

    con = Console(width=120, record=True, file=io.StringIO())
    con.print(app.main.query_one(DetailsPane)._body(app.snapshot, exp_id))
    return con.export_text()


def notes(app: NightlabApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


# ------------------------------------------------------------------------------------------------ 1: the editor
@pytest.mark.parametrize("var", ["EDITOR", "VISUAL"])
def test_a_missing_editor_is_one_line_not_a_crash(populated: tuple[Path, Populated], engine_lock: None,
                                                  monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    root, ids = populated
    monkeypatch.setenv(var, "doesnotexist-editor --wait")
    before = store_of(root).experiment(ids.proposed)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            for key in ("e", "E"):
                await pilot.press(key)
                await wait_until(pilot, lambda: any("doesnotexist-editor" in n for n in notes(app)),
                                 what="the editor problem")
                app.clear_notifications()
            await pilot.pause(0.2)
            assert app.is_running and not isinstance(app.screen, ErrorDialog)

    run(body())
    after = store_of(root).experiment(ids.proposed)
    assert (after.title, after.commit_sha) == (before.title, before.commit_sha)


def test_no_editor_at_all_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nightlab.errors import NightlabError
    from nightlab.tui.editor import editor_command

    with pytest.raises(NightlabError, match=r"set \$EDITOR"):
        editor_command(["f"], {"PATH": str(tmp_path)})
    (tmp_path / "nano").write_text("#!/bin/sh\n")
    (tmp_path / "nano").chmod(0o755)
    assert editor_command(["f"], {"PATH": str(tmp_path)}) == ["nano", "f"]
    assert editor_command(["f"], {"PATH": str(tmp_path), "EDITOR": "nano -w"}) == ["nano", "-w", "f"]


# ------------------------------------------------------------------------------------------------ 2: setup screen
@pytest.mark.parametrize("key", ["q", "escape"])
def test_q_and_esc_leave_the_setup_screen(tmp_path: Path, key: str) -> None:
    root = make_project(tmp_path / "fresh", configured=False)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, InitScreen), what="init offer")
            await pilot.press(key)
            await pilot.pause(0.2)
            assert not app.is_running and app.return_code == 0

    run(body())
    assert not (root / "nightlab.toml").exists()


# ------------------------------------------------------------------------------------------------ 10: tui.toml
def test_bad_tui_toml_values_are_named_and_change_nothing(populated: tuple[Path, Populated], engine_lock: None,
                                                          _own_xdg_config: Path) -> None:
    root, ids = populated
    cfg = _own_xdg_config / "nightlab" / "tui.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('theme = "solarized"\ncolour = "red"\n[keys]\napprove = "q"\nreject = "ctrl+shift+banana"\n'
                   'help = "F1"\nstart_engine = "ctrl+a"\nno_such_binding = "k"\n')

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            said = "\n".join(notes(app))
            for bit in ("theme = 'solarized' is not a theme", "unknown setting 'colour'",
                        "keys.approve = 'q': quit", "keys.reject = 'ctrl+shift+banana': 'banana' is not a key name",
                        "keys.help = 'F1'", "keys.no_such_binding: no such binding id"):
                assert bit in said, said
            assert "tui.toml" in said and "start_engine" not in said
            assert app.theme_info.name == "dark"
            await pilot.press("q")  # still quits: approve = "q" was refused, nothing gets approved
            await pilot.pause(0.2)
            assert not app.is_running
    run(body())
    assert store_of(root).approval(ids.hypothesis_approval).state == "pending"


def test_key_names_are_checked() -> None:
    from nightlab.tui import keymap

    for good in ("a", "A", "ctrl+a", "f5", "question_mark", "shift+tab", "q,escape", "full_stop", "ctrl+shift+up"):
        assert keymap.key_problem(good) is None, good
    for bad in ("ctrl+shift+banana", "F1", "hyperctrl+a", "ctrl+", "enterr"):
        assert keymap.key_problem(bad) is not None, bad
    good, problems = keymap.check_overrides({"approve": "r", "reject": "a"})  # a swap is fine
    assert good == {"approve": "r", "reject": "a"} and not problems
    good, problems = keymap.check_overrides({"review_accept": "s"})  # review's own split key
    assert not good and "review_split" in problems[0]


# ------------------------------------------------------------------------------------------------ 4: best so far
def test_the_best_so_far_line_never_climbs_to_a_discarded_run() -> None:
    from nightlab.agent.views import Snapshot, build_rows
    from nightlab.tui.widgets.chart import MetricChart

    base = {"title": "t", "kind": "hyperparameter", "runs": 1, "delta": None, "seconds": None, "seed": 0,
            "stage": None, "failure_class": None}
    rows = build_rows([{**base, "id": 1, "parent": None, "status": "kept", "kind": "baseline", "metric": 0.55},
                       {**base, "id": 9, "parent": 1, "status": "kept", "metric": 0.60},
                       {**base, "id": 11, "parent": 9, "status": "discarded", "metric": 0.6139},
                       {**base, "id": 12, "parent": 9, "status": "failed", "metric": None}])
    chart = MetricChart()
    chart.snapshot = Snapshot(project="p", metric="val_acc", goal=Goal.MAXIMIZE, rows=rows, best_id=9)
    (best_x, best_y, _), (xs, ys, _), *_ = chart.series()
    assert max(best_y) == 0.60 and best_y[-1] == 0.60  # what `nightlab status` calls best
    assert 0.6139 in ys and 11.0 in xs  # the discarded run is still a point
    # a step, not a slope: the old best holds up to the run that beat it, then the line rises there
    assert list(zip(best_x, best_y, strict=True)) == [(1.0, 0.55), (9.0, 0.55), (9.0, 0.60), (11.0, 0.60)]


def test_the_chart_s_axis_writes_values_as_the_table_does() -> None:
    from nightlab.tui.widgets.chart import _fmt, _fmt_value

    assert _fmt_value(0.6) == "0.6000" and _fmt_value(2.23974) == "2.2397"  # as the table and the events
    assert _fmt_value(1234.56) == "1234.6"
    assert _fmt_value(0.0001234) == "1.2e-04"  # 0.0001234 does not fit the 7-column gutter
    assert _fmt(12.0) == "12"  # the x axis counts runs and steps


# ------------------------------------------------------------------------------------------------ 3: seed-aware runs
def add_rerun(root: Path, ids: Populated, of: int, seed: int, acc: float, *, running: bool = False) -> int:
    """A seed re-run of `of` as the engine records it: its own experiment, job and log."""
    st = store_of(root)
    e = st.add_experiment(session_id=ids.session, parent_id=of, title=f"re-run #{of} seed {seed}", kind="rerun",
                          status="running" if running else "kept", seed=seed, policy="builtin", rerun_of=of,
                          run_result=None if running else "succeeded", metric=None if running else acc)
    run_dir = root / ".nightlab" / "runs" / str(e.id)
    run_dir.mkdir(parents=True)
    (run_dir / "output.log").write_text(f"step 1 loss 0.9\nacc={acc:.4f}\n")
    job = st.add_job(e.id, str(run_dir), str(run_dir / "output.log"), "cpu0")
    if running:
        st.update_job(job.id, state="running", started=1.0)
    else:
        st.update_job(job.id, state="ended", exit_code=0, started=1.0, ended=2.0)
    st.close()
    return e.id


def test_the_log_pane_says_which_run_and_seed_and_switches_between_them(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.widgets.logpane import LogTail

    root, ids = populated
    rerun = add_rerun(root, ids, ids.baseline, seed=1, acc=0.5653)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.baseline)
            log = app.main.query_one(LogTail)
            # the experiment's own run, not the newest re-run, and the title says so
            assert log.path == root / ".nightlab" / "runs" / str(ids.baseline) / "output.log"
            assert log.border_title == f"Log #{ids.baseline} · seed 0 · run 1/2 ([ ])"
            await wait_until(pilot, lambda: any("acc=0.7000" in ln for ln in log.lines), what="own log")
            details = details_text(app, ids.baseline)
            assert "seed 0 0.7000" in details and f"#{rerun} seed 1 0.5653" in details
            await pilot.press("right_square_bracket")
            assert log.border_title == f"Log #{ids.baseline} · re-run #{rerun} · seed 1 · run 2/2 ([ ])"
            await wait_until(pilot, lambda: any("acc=0.5653" in ln for ln in log.lines), what="re-run log")
            await pilot.press("left_square_bracket")
            assert log.border_title.startswith(f"Log #{ids.baseline} · seed 0")

    run(body())


def test_a_running_run_shows_its_elapsed_time(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.widgets.logpane import LogTail

    root, ids = populated
    add_rerun(root, ids, ids.best, seed=1, acc=0.0, running=True)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.best)
            assert " · seed 1 · running " in app.main.query_one(LogTail).border_title
            details = details_text(app, ids.best)
            assert "(running, past the 0.4s #2 took)" in details and "time —" not in details

    run(body())


def test_a_running_run_shows_how_far_it_is_against_its_parent(populated: tuple[Path, Populated]) -> None:
    """Progress where nightlab knows it: the elapsed time against what its parent took (its own first run for a
    seed re-run). Only the elapsed time was shown."""
    import time

    root, ids = populated
    st = store_of(root)
    st.update_experiment(ids.best, seconds=40.0)
    st.update_experiment(ids.proposed, status="running")
    run_dir = root / ".nightlab" / "runs" / str(ids.proposed)
    run_dir.mkdir(parents=True)
    (run_dir / "output.log").write_text("step 1 loss 0.9\n")
    job = st.add_job(ids.proposed, str(run_dir), str(run_dir / "output.log"), "cpu0")
    st.update_job(job.id, state="running", started=time.time() - 10.0)
    st.close()

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.proposed)
            details = details_text(app, ids.proposed)
            assert f"of the 40.0s #{ids.best} took)" in details, details
            shown = int(details.split("(running, ~")[1].split("%")[0])
            assert 24 <= shown <= 40  # 10 s of 40 s, and the seconds the test itself took

    run(body())


# ------------------------------------------------------------------------------------------------ 7: truthful copy
def test_the_end_of_a_session_says_whether_there_is_a_best(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.messages import EngineStopped

    root, ids = populated
    st = store_of(root)
    st.update_session(ids.session, state="done", runs_started=6)
    st.event("exhausted", "the policy has nothing left to try", session_id=ids.session)

    async def body(expect: list[str], refuse: list[str]) -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.post_message(EngineStopped("done"))
            await wait_until(pilot, lambda: any("session is done" in n for n in notes(app)), what="the end")
            said = next(n for n in notes(app) if "session is done" in n)
            for bit in expect:
                assert bit in said, said
            for bit in refuse:
                assert bit not in said, said

    run(body([f"the best is #{ids.best} LR = 0.3 (acc 0.9000, +0.2000 vs baseline)", "press p",
              "the policy has nothing left to try"], []))
    st.update_experiment(ids.best, status="discarded")  # now nothing beat the baseline
    run(body(["no change beat the baseline (acc 0.7000); nothing to promote"], ["press p", "best is"]))


def test_a_refusal_is_not_shown_as_the_users_rejection_and_every_decision_has_its_reason(
        populated: tuple[Path, Populated], engine_lock: None) -> None:
    from nightlab.tui.widgets.events import EventsPane

    root, ids = populated
    st = store_of(root)
    refused = st.add_experiment(session_id=ids.session, parent_id=ids.best, title="LR = 0.3 again",
                                kind="hyperparameter", status="rejected", seed=0, policy="builtin",
                                error=f"repeats #{ids.best} (LR = 0.3)").id
    st.event("duplicate", f"refused #{refused} 'LR = 0.3 again': it repeats #{ids.best}", session_id=ids.session,
             experiment_id=refused)
    st.event("discarded", f"#{ids.worse} discarded: 0.6100 is within the noise of the best", session_id=ids.session,
             experiment_id=ids.worse)
    st.event("exhausted", "the policy has nothing left to try", session_id=ids.session)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            table = app.main.query_one(ExperimentTable)
            assert "⊘ refused" in str(table.get_cell(str(refused), "status"))
            events = app.main.query_one(EventsPane)
            text = " ".join(" ".join(strip.text for strip in events.lines).split())
            for bit in (f"⊘ refused #{refused} 'LR = 0.3 again': it repeats #{ids.best}",
                        "within the noise", "■ the policy has nothing left to try"):
                assert bit in text, text
            assert f"decided  refused #{refused}" in details_text(app, refused)
            assert "refused by the engine" in details_text(app, refused)
            assert f"decided  #{ids.worse} discarded: 0.6100 is within the noise" in details_text(app, ids.worse)
            # the user's own rejection stays "rejected"
            await pilot.press("r")
            await pilot.press(*"too small", "enter")
            await wait_until(pilot, lambda: st.approval(ids.hypothesis_approval).state == "rejected", what="reject")
            st.update_experiment(ids.proposed, status="rejected", error="rejected: too small")
            app.poke()
            await wait_until(pilot, lambda: "⊘ rejected" in str(table.get_cell(str(ids.proposed), "status")),
                             what="rejected row")

    run(body())


# ------------------------------------------------------------------------------------------------ 8, 9: layout
def test_at_80x24_nothing_essential_is_cut(populated: tuple[Path, Populated]) -> None:
    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            status = app.main.query_one("#status").render().plain
            assert "engine stopped" in status and "runs 4/6" in status
            footer = {k.description: k.region for k in app.main.query("FooterKey")}  # type: ignore[attr-defined]
            for want in ("Approve", "Reject", "Promote", "Stop", "Quit", "Keys"):
                assert want in footer and footer[want].right <= 80, (want, footer.get(want))
            chart = app.main.query_one("#metric-chart")
            assert chart.display and chart.region.height >= 5 and chart.region.width >= 30
            await pilot.press("question_mark")
            await pilot.pause()
            box = app.screen.query_one(".help-dialog").region
            assert box.x >= 0 and box.right <= 80

    run(body())


def test_panes_grow_with_a_big_terminal(populated: tuple[Path, Populated]) -> None:
    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(200, 60)) as pilot:
            await loaded(pilot)
            assert app.main.query_one("#log").region.height >= 18
            assert app.main.query_one("#metric-chart").region.height >= 14
            assert app.main.query_one("#events").region.width >= 60

    run(body())


def test_the_review_at_80_columns_gives_the_diff_the_width_and_scrolls_long_lines(
        populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.widgets.diffview import DiffView

    root, ids = populated
    st = store_of(root)
    e = st.experiment(ids.proposed)
    long = "x = " + " + ".join(f"value_{i}" for i in range(30))
    st.update_experiment(ids.proposed, patch=(e.patch or "") + "diff --git a/cfg.py b/cfg.py\n--- a/cfg.py\n"
                         f"+++ b/cfg.py\n@@ -1 +1 @@\n-x = 1\n+{long}\n")

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.proposed)
            await pilot.press("d")
            await wait_until(pilot, lambda: getattr(app.screen, "ready", False), what="diff")
            assert not app.screen.query_one("#review-files").display
            diff = app.screen.query_one(DiffView)
            assert diff.region.width >= 76
            assert diff.max_scroll_x > 0
            diff.scroll_to(x=diff.max_scroll_x, animate=False, immediate=True)
            await pilot.pause()
            shown = [diff.render_line(y).text for y in range(diff.region.height)]
            assert any("value_29" in ln for ln in shown), shown
            await pilot.press("s")  # side by side: each side gets about half of the 80 columns
            await pilot.pause()
            assert diff.max_scroll_x > 0

    run(body())


# ------------------------------------------------------------------------------------------------ 16, 17: keys
def test_esc_never_changes_the_mode(populated: tuple[Path, Populated], engine_lock: None) -> None:
    root, _ = populated

    async def body() -> None:
        app = make_app(root, mode="autonomous")
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            app.main.query_one(ExperimentTable).focus()
            await pilot.press("z")
            assert app.main.maximized is not None
            await pilot.press("escape")  # leaves the zoom
            assert app.main.maximized is None
            await pilot.press("escape", "escape")  # one too many, by habit
            assert app.mode == "autonomous"

    run(body())


def test_s_on_a_finished_session_asks_before_spending_a_new_budget(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.screens.dialogs import ConfirmDialog

    root, ids = populated
    st = store_of(root)
    st.update_session(ids.session, state="done")

    async def body() -> None:
        app = make_app(root)
        started: list[bool | None] = []
        app.start_engine = lambda new_session=None: started.append(new_session)  # type: ignore[method-assign]
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
            assert "Start a new session of up to 6 runs?" in app.screen.question
            await pilot.press("n")
            await pilot.pause()
            assert started == [] and not isinstance(app.screen, ConfirmDialog)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: started == [None], what="started")

    run(body())


# ------------------------------------------------------------------------------------------------ 12: promote review
def test_promoting_a_discarded_run_says_so_and_a_dirty_file_is_named_on_accept(
        populated: tuple[Path, Populated]) -> None:
    from textual.widgets import Static

    from nightlab.tui.screens.review import ReviewScreen

    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.worse)
            await pilot.press("p")
            screen = app.screen
            assert isinstance(screen, ReviewScreen)
            await wait_until(pilot, lambda: screen.ready or bool(screen.problem), what="the review")
            header = str(screen.query_one("#review-header", Static).render())
            assert "acc 0.6100 (-0.0900 vs baseline)" in header
            assert f"⚠ it was discarded; the best is #{ids.best} (acc 0.9000)" in header
            await pilot.press("escape")
            (root / "train.py").write_text((root / "train.py").read_text() + "# my local change\n")
            await select(pilot, ids.best)
            await pilot.press("p")
            screen = app.screen
            await wait_until(pilot, lambda: bool(getattr(screen, "problem", "")), what="the problem")
            assert "★ the best so far" in str(screen.query_one("#review-header", Static).render())
            await pilot.press("a")
            await wait_until(pilot, lambda: any("uncommitted changes in train.py" in n for n in notes(app)),
                             what="the reason accept cannot promote")

    head = git(root, "rev-parse", "HEAD")
    run(body())
    assert git(root, "rev-parse", "HEAD") == head


# ------------------------------------------------------------------------------------------------ 15: list keys
def test_j_k_g_G_home_end_move_through_the_experiments(populated: tuple[Path, Populated]) -> None:
    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            table = app.main.query_one(ExperimentTable)
            table.focus()
            await pilot.press("g")
            await wait_until(pilot, lambda: app.main.selected == ids.baseline, what="first row")
            await pilot.press("j")
            await wait_until(pilot, lambda: app.main.selected == ids.best, what="next row")
            await pilot.press("k")
            await wait_until(pilot, lambda: app.main.selected == ids.baseline, what="previous row")
            await pilot.press("G")
            await wait_until(pilot, lambda: table.cursor_row == table.row_count - 1, what="last row")
            await pilot.press("home")
            await wait_until(pilot, lambda: table.cursor_row == 0, what="home")
            await pilot.press("end")
            await wait_until(pilot, lambda: table.cursor_row == table.row_count - 1, what="end")

    run(body())


def test_the_list_keys_work_in_every_list(populated: tuple[Path, Populated], tmp_path: Path) -> None:
    """j / k / g / G in the projects overview, the review's files and the events pane too (only the experiment list
    and the approval queue had them)."""
    from textual.widgets import DataTable, OptionList

    from nightlab.agent import projects
    from nightlab.tui.screens.projects import ProjectsScreen
    from nightlab.tui.widgets.events import EventsPane

    root, ids = populated
    for r in (make_project(tmp_path / "other"), make_project(tmp_path / "third"), root):
        projects.register(r)
    st = store_of(root)
    e = st.experiment(ids.proposed)
    st.update_experiment(ids.proposed, patch=(e.patch or "") + "diff --git a/cfg.py b/cfg.py\n--- a/cfg.py\n"
                         "+++ b/cfg.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    st.close()

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(pilot)
            events = app.main.query_one(EventsPane)
            for i in range(200):
                events.write(f"line {i}")
            await pilot.pause()
            events.focus()
            await pilot.press("g")
            await wait_until(pilot, lambda: events.scroll_y == 0, what="events at the top")
            await pilot.press("j", "j")
            await wait_until(pilot, lambda: events.scroll_y == 2, what="events two lines down")
            await pilot.press("k")
            await wait_until(pilot, lambda: events.scroll_y == 1, what="events a line up")
            await pilot.press("G")
            await wait_until(pilot, lambda: events.scroll_y == events.max_scroll_y > 0, what="events at the end")

            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, ProjectsScreen)
                             and app.screen.query_one(DataTable).row_count >= 3, what="the projects")
            table = app.screen.query_one(DataTable)
            table.focus()
            await pilot.press("G")
            await wait_until(pilot, lambda: table.cursor_row == table.row_count - 1, what="last project")
            await pilot.press("k")
            await wait_until(pilot, lambda: table.cursor_row == table.row_count - 2, what="previous project")
            await pilot.press("g")
            await wait_until(pilot, lambda: table.cursor_row == 0, what="first project")
            await pilot.press("j")
            await wait_until(pilot, lambda: table.cursor_row == 1, what="next project")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is app.main, what="back")

            await select(pilot, ids.proposed)
            await pilot.press("d")
            await wait_until(pilot, lambda: getattr(app.screen, "ready", False), what="the review")
            files = app.screen.query_one(OptionList)
            assert files.option_count >= 2
            files.focus()
            await pilot.press("G")
            await wait_until(pilot, lambda: files.highlighted == files.option_count - 1, what="last file")
            await pilot.press("g")
            await wait_until(pilot, lambda: files.highlighted == 0, what="first file")
            await pilot.press("j")
            await wait_until(pilot, lambda: files.highlighted == 1, what="next file")

    run(body())


# ------------------------------------------------------------------------------------------------ 14: copy
def test_search_counts_its_matches_across_read_blocks(tmp_path: Path) -> None:
    from nightlab.tui.logfiles import LineIndex

    log = tmp_path / "out.log"
    log.write_text("".join("loss NaN here\n" if i % 7 == 0 else f"step {i}\n" for i in range(100)))
    idx = LineIndex(log)
    idx.update()
    assert idx.count("nan") == 15
    assert idx.count("NaN", block=5) == 15  # matches straddling the block edges count once
    assert idx.count("nan", before_line=14) == 2 and idx.count("nan", before_line=15) == 3


def test_the_log_search_says_which_match_of_how_many(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.widgets.logview import LogFileView

    root, ids = populated
    log = root / ".nightlab" / "runs" / str(ids.failed) / "output.log"
    log.write_text("".join(f"step {i} loss {'nan' if i % 10 == 0 else 0.5}\n" for i in range(1, 31)))

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.failed)
            await pilot.press("l")
            view = app.screen.query_one(LogFileView)
            await wait_until(pilot, lambda: view.index.line_count == 30, what="indexed")
            await pilot.press("slash", *"nan", "enter")
            await wait_until(pilot, lambda: view.border_subtitle == "/nan · match 1/3", what="first match")
            await pilot.press("n")
            await wait_until(pilot, lambda: view.border_subtitle == "/nan · match 2/3", what="second match")

    run(body())


def test_figures_read_alike_everywhere() -> None:
    from nightlab.agent.diagnose import classify_failure
    from nightlab.tui.data import fmt_seconds

    assert fmt_seconds(13.8) == "13.8s"
    f = classify_failure("step 1\n", None, "killed", reason="stopped by the user (TUI)")
    assert (f.cls, f.summary) == ("killed", "stopped by the user (TUI)")
    from nightlab.agent.policy.transforms import fix_linear_in_features

    src = "import torch.nn as nn\n\nclass M(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear({}, 1)\n"
    literal = fix_linear_in_features(src.format(2), "m.py", got=4, expected=2)
    named = fix_linear_in_features("H = 2\n" + src.format("H"), "m.py", got=4, expected=2)
    assert literal is not None and "built for 2;" in literal.rationale  # not "built for 2 = 2"
    assert named is not None and "built for H = 2;" in named.rationale


def test_charts_can_be_focused_zoomed_and_mark_the_selected_run(populated: tuple[Path, Populated]) -> None:
    from nightlab.tui.widgets.chart import MetricChart

    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.worse)
            chart = app.main.query_one(MetricChart)
            *_, (mx, my, _) = chart.series()
            assert (mx, my) == ([float(ids.worse)], [0.61])
            assert chart.border_subtitle == f"━ best so far · ⠂ runs · ● #{ids.worse}"
            chart.focus()
            await pilot.press("z")
            assert app.main.maximized is chart
            await pilot.press("z")
            assert app.main.maximized is None
            app.main.query_one("#details").focus()
            await pilot.press("z")
            assert app.main.maximized is app.main.query_one("#details")

    run(body())


# ------------------------------------------------------------------------------------------------ 11: init says what
def test_init_in_the_tui_shows_what_it_detected_until_enter(tmp_path: Path) -> None:
    from textual.widgets import Static

    root = make_project(tmp_path / "fresh", configured=False)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, InitScreen), what="init offer")
            screen = app.screen
            await pilot.press("i")
            await wait_until(pilot, lambda: screen.done, timeout=60, what="init")
            shown = str(screen.query_one("#setup-progress", Static).render())
            for bit in ("command   python train.py", "metric    acc (higher is better)",
                        "timeout", "baseline  acc = 0.7", "editable  train.py"):
                assert bit in shown, shown
            await wait_until(pilot, lambda: app.snapshot is not None, what="the project loaded behind")
            assert app.screen is screen  # still showing what init found
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen is app.main, what="the main screen")

    run(body())


def test_the_cli_progress_line_ends_before_a_question(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from nightlab import console

    progress = console.Progress("baseline")
    progress.update(1.0, "val_acc=0.5889")
    progress.break_line()
    monkeypatch.setattr("builtins.input", lambda prompt="": "1")
    console.ask_choice("Which printed value is the metric to optimise?", ["val_acc"])
    err = capsys.readouterr().err
    assert err.endswith("val_acc=0.5889\n")
    progress.close()  # nothing more to clear
    assert capsys.readouterr().err == ""


def test_palette_entries_name_their_key_as_remapped(populated: tuple[Path, Populated], _own_xdg_config: Path) -> None:
    """The key beside each entry as the palette shows it: a one-letter key in brackets was read as markup ("[q]" a
    style, "[s]" strike-through) and vanished from the entry."""
    from textual.command import CommandList

    root, _ = populated
    cfg = _own_xdg_config / "nightlab" / "tui.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[keys]\napprove = "y"\n')

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await pilot.press("ctrl+p")
            shown = app.screen.query_one(CommandList)
            await wait_until(pilot, lambda: shown.option_count > 15, what="the palette's entries")
            entries = {}
            for i in range(shown.option_count):
                title, _, help = str(shown.get_option_at_index(i).prompt).partition("\n")
                entries[title] = help
            assert entries["Approve the current request"].startswith("[y]  ")
            assert entries["Mode: toggle step / autonomous"].startswith("[shift+tab]  ")
            assert entries["Mode: step"].startswith("[ctrl+c]") and "esc" not in entries["Mode: step"].lower()
            assert entries["Quit"].startswith("[q]  ")
            assert entries["Show the selected experiment's diff"].startswith("[d]  ")
            assert entries["Edit the proposal's patch"].startswith("[E]  ")
            assert entries["Keys"].startswith("[?]  ")

    run(body())


def test_the_first_ctrl_p_does_not_redraw_the_screen_behind_it(populated: tuple[Path, Populated]) -> None:
    """The first ctrl+p took 0.6-1.3 s: the palette re-rendered the whole dimmed screen behind it on each change, and
    a full garbage collection over everything the app had built landed on it. The dimmed picture is made once, and
    what exists after the first data is frozen out of the collector (and thawed when the app goes)."""
    import gc

    from textual.command import CommandList

    from nightlab.tui.palette import Palette

    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await wait_until(pilot, lambda: gc.get_freeze_count() > 0, what="the heap frozen after the first data")
            await pilot.press("ctrl+p")
            assert isinstance(app.screen, Palette)
            palette = app.screen
            entries = palette.query_one(CommandList)
            await wait_until(pilot, lambda: entries.option_count > 15, what="entries")
            every = entries.option_count
            await pilot.press(*"mode:")
            await wait_until(pilot, lambda: 3 <= entries.option_count < every, what="filtered")
            app.main.refresh(layout=True)  # the screen behind changes (a new snapshot, the log growing)
            await pilot.pause(0.2)
            assert palette.background_renders == 1
            await pilot.press("escape")
            assert not isinstance(app.screen, Palette)
            await pilot.press("ctrl+p")
            assert isinstance(app.screen, Palette) and app.screen is not palette

    gc.unfreeze()
    run(body())
    assert gc.get_freeze_count() == 0  # the app thawed what it froze when it went (a test run opens many apps)


def test_slash_filters_the_tree_and_esc_clears_it(populated: tuple[Path, Populated]) -> None:
    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            table = app.main.query_one(ExperimentTable)
            await pilot.press("slash", *"lr =")
            await wait_until(pilot, lambda: table.row_count == 3, what="filtered")  # LR = 0.3, 0.01, 0.4
            assert "/lr = (3 of 5)" in str(table.border_title)
            await pilot.press("enter")
            assert table.has_focus and table.row_count == 3
            await pilot.press("q")  # keys act again once the filter is left (q quits: not typed into it)
            await pilot.pause(0.2)
            assert not app.is_running

    run(body())

    async def esc() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            table = app.main.query_one(ExperimentTable)
            await pilot.press("slash", *"failed")
            await wait_until(pilot, lambda: table.row_count == 1, what="filtered by status")
            await pilot.press("escape")
            await wait_until(pilot, lambda: table.row_count == 5, what="cleared")
            assert not app.main.query_one("#tree-filter").display and app.mode == "step"

    run(esc())


def test_q_leaves_the_review_and_the_log_viewer(populated: tuple[Path, Populated]) -> None:
    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.best)
            for key in ("d", "l"):
                await pilot.press(key)
                await wait_until(pilot, lambda: app.screen is not app.main, what=f"{key} opened")
                await pilot.press("q")
                await wait_until(pilot, lambda: app.screen is app.main, what="back")
            assert app.is_running

    run(body())


def test_q_closes_every_box_and_never_quits_from_one(populated: tuple[Path, Populated]) -> None:
    """Help, the plan, the projects overview, a yes/no question and an error dialog: `q` closes each (it did nothing
    there: only esc did); typed into the rejection feedback it is a letter."""
    from nightlab.tui.screens.dialogs import ConfirmDialog, FeedbackDialog

    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            for key in ("question_mark", "P", "o"):
                await pilot.press(key)
                await wait_until(pilot, lambda: app.screen is not app.main, what=f"{key} opened")
                await pilot.press("q")
                await wait_until(pilot, lambda: app.screen is app.main, what=f"q closed what {key} opened")
            answers: list[bool | None] = []
            app.push_screen(ConfirmDialog("Stop #3?"), answers.append)
            await pilot.pause()
            await pilot.press("q")
            await wait_until(pilot, lambda: answers == [False], what="q answered no")
            app.push_screen(ErrorDialog("Oops", "something went wrong"))
            await pilot.pause()
            await pilot.press("q")
            await wait_until(pilot, lambda: app.screen is app.main, what="q closed the error")
            feedback: list[str | None] = []
            app.push_screen(FeedbackDialog("Reject #5"), feedback.append)
            await pilot.pause()
            await pilot.press(*"quicker", "enter")
            await wait_until(pilot, lambda: feedback == ["quicker"], what="q typed as a letter")
            assert app.is_running and app.screen is app.main

    run(body())
