"""SVG snapshots of the main screens at 120x40 and 80x24 (pytest-textual-snapshot).

Deterministic by construction: the project folder is always called `proj`, the store holds fixed values (no
running jobs, so no clocks on screen), nothing animates, and the config path shown in help is under a fake home.
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` after checking the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nightlab.tui.app import NightlabApp
from nightlab.tui.widgets.experiments import ExperimentTable

from tuikit import Populated, make_project, wait_until


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The events pane shows local times: pin the zone so a snapshot reads the same on every machine."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


BIG = (120, 40)
SMALL = (80, 24)


def app_for(root: Path, **kw: Any) -> NightlabApp:
    return NightlabApp(root, start="never", grace_s=0.0, poll_s=60, **kw)


async def settle(pilot: Any) -> None:
    await wait_until(pilot, lambda: pilot.app.snapshot is not None, what="first snapshot")
    await pilot.pause()


def select(exp_id: int, *keys: str) -> Any:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        table = pilot.app.main.query_one(ExperimentTable)
        table.move_cursor(row=table.get_row_index(str(exp_id)))
        await pilot.pause()
        await pilot.press(*keys)
        screen = pilot.app.screen
        if hasattr(screen, "ready"):
            await wait_until(pilot, lambda: screen.ready or bool(screen.problem), what="diff")
        await pilot.pause()

    return before


def test_main_120x40(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    assert snap_compare(app_for(populated[0]), terminal_size=BIG, run_before=settle)


def test_main_80x24(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    assert snap_compare(app_for(populated[0]), terminal_size=SMALL, run_before=settle)


def test_main_autonomous_80x24(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    assert snap_compare(app_for(populated[0], mode="autonomous"), terminal_size=SMALL, run_before=settle)


def test_ranked_light_theme_120x40(snap_compare: Any, populated: tuple[Path, Populated], _own_xdg_config: Path) -> None:
    cfg = _own_xdg_config / "nightlab" / "tui.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('theme = "light"\n')
    assert snap_compare(app_for(populated[0]), terminal_size=BIG, press=["t"], run_before=settle)


def test_review_promote_120x40(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    root, ids = populated
    assert snap_compare(app_for(root), terminal_size=BIG, run_before=select(ids.best, "p"))


def test_review_side_by_side_80x24(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    root, ids = populated
    assert snap_compare(app_for(root), terminal_size=SMALL, run_before=select(ids.proposed, "d", "s"))


def test_log_viewer_search_120x40(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    root, ids = populated
    log = root / ".nightlab" / "runs" / str(ids.failed) / "output.log"
    log.write_text("".join(f"step {i} loss {1 / i:.4f}\n" for i in range(1, 200)) +
                   "Traceback (most recent call last):\nZeroDivisionError: division by zero\n")

    async def before(pilot: Any) -> None:
        await select(ids.failed, "l")(pilot)
        view = pilot.app.screen.query_one("LogFileView")
        await wait_until(pilot, lambda: view.index.line_count == 201, what="indexed")
        await pilot.press("slash", *"division", "enter")
        await wait_until(pilot, lambda: view.current == 200, what="match")
        await pilot.pause()

    assert snap_compare(app_for(root), terminal_size=BIG, run_before=before)


def test_help_120x40(snap_compare: Any, populated: tuple[Path, Populated], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the help names the config path: make it ~/.config/...
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    assert snap_compare(app_for(populated[0]), terminal_size=BIG, press=["question_mark"], run_before=settle)


def test_palette_120x40(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    """Every action by name, each with its key beside it, over the dimmed main screen."""
    async def before(pilot: Any) -> None:
        from textual.command import CommandList

        await settle(pilot)
        await pilot.press("ctrl+p")
        palette = pilot.app.screen
        palette.query_one("Input").cursor_blink = False
        entries = palette.query_one(CommandList)
        await wait_until(pilot, lambda: palette.has_class("-ready") and entries.option_count > 15,
                         what="the palette's entries")
        await pilot.pause()

    assert snap_compare(app_for(populated[0]), terminal_size=BIG, run_before=before)


def test_reject_feedback_80x24(snap_compare: Any, populated: tuple[Path, Populated]) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("r")
        pilot.app.screen.query_one("Input").cursor_blink = False
        await pilot.press(*"too small a step")
        await pilot.pause()

    assert snap_compare(app_for(populated[0]), terminal_size=SMALL, run_before=before)


def test_init_offer_80x24(snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the offer names the folder: make it ~/proj
    root = make_project(tmp_path / "proj", configured=False)

    async def before(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.id == "setup", what="init offer")
        await pilot.pause()

    app = app_for(root)
    snap = snap_compare(app, terminal_size=SMALL, run_before=before)
    assert snap
