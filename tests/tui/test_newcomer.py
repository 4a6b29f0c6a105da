"""The TUI as a new user meets it (issue 18): nothing traps or crashes, the screens say what is true, bad settings
are named. Pilot tests against a populated store; each one failed on the code before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nightlab.agent.store import Store
from nightlab.tui.app import NightlabApp
from nightlab.tui.screens.dialogs import ErrorDialog
from nightlab.tui.screens.setup import InitScreen
from nightlab.tui.widgets.experiments import ExperimentTable

from tuikit import Populated, git, make_project, run, wait_until


def store_of(root: Path) -> Store:
    return Store(root / ".nightlab" / "nightlab.db")


def make_app(root: Path, **kw: Any) -> NightlabApp:
    kw.setdefault("start", "never")
    kw.setdefault("grace_s", 0.0)
    kw.setdefault("poll_s", 0.1)
    return NightlabApp(root, **kw)


async def loaded(pilot: Any) -> None:
    await wait_until(pilot, lambda: pilot.app.snapshot is not None, what="first snapshot")
    await pilot.pause()


async def select(pilot: Any, exp_id: int) -> None:
    table = pilot.app.main.query_one(ExperimentTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(str(exp_id)))
    await wait_until(pilot, lambda: pilot.app.main.selected == exp_id, what=f"#{exp_id} selected")


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
    root = make_project(tmp_path / "fresh")
    (root / "nightlab.toml").unlink()
    git(root, "commit", "-qam", "no config")

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
    from nightlab.tui.data import Snapshot, build_rows
    from nightlab.tui.widgets.chart import MetricChart

    base = {"title": "t", "kind": "hyperparameter", "runs": 1, "delta": None, "seconds": None, "seed": 0,
            "stage": None, "failure_class": None}
    rows = build_rows([{**base, "id": 1, "parent": None, "status": "kept", "kind": "baseline", "metric": 0.55},
                       {**base, "id": 9, "parent": 1, "status": "kept", "metric": 0.60},
                       {**base, "id": 11, "parent": 9, "status": "discarded", "metric": 0.6139},
                       {**base, "id": 12, "parent": 9, "status": "failed", "metric": None}])
    chart = MetricChart()
    chart.snapshot = Snapshot(project="p", metric="val_acc", goal="maximize", rows=rows, best_id=9)
    (_, best_y, _), (xs, ys, _) = chart.series()
    assert max(best_y) == 0.60 and best_y[-1] == 0.60  # what `nightlab status` calls best
    assert 0.6139 in ys and 11.0 in xs  # the discarded run is still a point
