"""The main screen fits the terminal it is in (issue 18, item 9): at 80x24 nothing essential is cut and an empty
queue takes one line, a terminal narrowed while open keeps its footer's Stop / Quit / Keys, and at 200x60 the room
goes to the log and the charts rather than to blank rows of details. Region sizes are asserted, not pictures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from nightlab.agent.states import ApprovalState
from nightlab.tui.widgets.details import DetailsPane

from tuikit import Populated, loaded, make_app, run, select, store_of, wait_until

PANES = ("experiments", "approvals", "details", "metric-chart", "curve-chart", "log", "events")


def footer_keys(screen: Any) -> dict[str, Any]:
    """Each footer entry's label (its description, else its key) and where it is drawn."""
    return {k.description or k.key: k.region for k in screen.query("FooterKey")}


def decide_everything(root: Path, ids: Populated) -> None:
    st = store_of(root)
    for aid in (ids.hypothesis_approval, ids.promote_approval):
        st.decide(aid, ApprovalState.REJECTED, "test")
    st.close()


def details_lines(app: Any, exp_id: int) -> int:
    """How many rows the details of `exp_id` fill at the pane's width."""
    pane = app.main.query_one(DetailsPane)
    con = Console(width=pane.scrollable_content_region.width, record=True, file=io.StringIO())
    con.print(pane._body(app.snapshot, exp_id))
    return len(con.export_text().rstrip("\n").splitlines())


def test_an_empty_approval_queue_at_80x24_is_one_line_without_a_scrollbar(populated: tuple[Path, Populated]) -> None:
    root, ids = populated
    decide_everything(root, ids)

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            queue = app.main.query_one("#approvals")
            await wait_until(pilot, lambda: queue.border_subtitle == "nothing waiting", what="the empty queue")
            assert queue.region.height == 3  # its border and one line: the experiment list keeps the room
            assert not queue.show_vertical_scrollbar and not queue.show_horizontal_scrollbar
            assert app.main.query_one("#experiments").region.height >= 11
            status = app.main.query_one("#status").render().plain
            assert "engine stopped" in status
            keys = footer_keys(app.main)
            for want in ("Stop", "Quit", "Keys"):
                assert want in keys and keys[want].right <= 80, (want, keys.get(want))
            chart = app.main.query_one("#metric-chart")
            assert chart.display and chart.region.height >= 5 and chart.region.right <= 80
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: bool(app.screen.query(".help-dialog")), what="the keys box")
            box = app.screen.query_one(".help-dialog").region
            assert box.x >= 0 and box.right <= 80 and box.y >= 0 and box.bottom <= 24

    run(body())


def test_narrowing_the_terminal_keeps_stop_quit_and_keys_in_the_footer(populated: tuple[Path, Populated]) -> None:
    """Narrowed from 120 to 80 columns while open, the footer kept its ctrl+p entry and lost Quit and Keys off its
    right edge (only a footer first drawn narrow dropped it)."""
    root, _ = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(pilot)
            assert "Commands" in footer_keys(app.main)
            await pilot.resize_terminal(80, 24)
            await wait_until(pilot, lambda: "Commands" not in footer_keys(app.main) and "Keys" in footer_keys(app.main),
                             what="the narrow footer")
            await pilot.pause()
            keys = footer_keys(app.main)
            for want in ("Approve", "Reject", "Promote", "Stop", "Quit", "Keys"):
                assert want in keys and keys[want].right <= 80, (want, keys.get(want))
            await pilot.resize_terminal(120, 40)
            await wait_until(pilot, lambda: "Commands" in footer_keys(app.main), what="ctrl+p back in the wide footer")

    run(body())


def test_a_big_terminal_gives_its_room_to_the_log_and_charts_not_to_blank_details(
        populated: tuple[Path, Populated]) -> None:
    """At 200x60 the log stayed 10 rows, the charts about 40x10 and details had about 20 blank rows."""
    root, ids = populated
    sizes: dict[tuple[int, int], dict[str, Any]] = {}
    blank: dict[int, int] = {}

    async def body(size: tuple[int, int]) -> None:
        app = make_app(root)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            sizes[size] = {p: app.main.query_one(f"#{p}").region for p in PANES}
            if size != (200, 60):
                return
            pane = app.main.query_one(DetailsPane)
            for exp_id in (ids.baseline, ids.best, ids.worse, ids.failed, ids.proposed):
                await select(pilot, exp_id)
                want = details_lines(app, exp_id)

                def unfilled(want: int = want) -> int:
                    return pane.scrollable_content_region.height - want

                # the pane takes the height of what it says (within its bounds) once the layout settles
                await wait_until(pilot, lambda: unfilled() <= 5, what=f"details of #{exp_id} without a blank area")
                blank[exp_id] = unfilled()

    run(body((120, 40)))
    run(body((200, 60)))
    small, big = sizes[(120, 40)], sizes[(200, 60)]
    assert big["log"].height >= 18 and big["log"].height > small["log"].height
    assert big["log"].width >= 110
    for chart in ("metric-chart", "curve-chart"):
        assert big[chart].height >= 20 and big[chart].height > small[chart].height, (chart, big[chart])
        assert big[chart].width >= 40 and big[chart].width > small[chart].width, (chart, big[chart])
    assert big["experiments"].height > small["experiments"].height
    assert all(b <= 5 for b in blank.values()), blank


def test_the_review_and_the_log_viewer_keep_their_footer_keys_at_80_columns(
        populated: tuple[Path, Populated]) -> None:
    """The review's footer ran `? Ke▏^p Commands` off its right edge at 80 columns: the main screen's compact footer
    was its own. Both full screens fold it the same way, when opened narrow or narrowed while open."""
    root, ids = populated

    async def body() -> None:
        app = make_app(root)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await select(pilot, ids.proposed)
            for key, wanted in (("d", ("Accept", "Reject", "Back", "Keys")), ("l", ("Search", "Back"))):
                if key == "l":
                    await select(pilot, ids.best)
                await pilot.press(key)
                await wait_until(pilot, lambda: app.screen is not app.main, what=f"{key} opened")
                screen = app.screen
                for size in ((80, 24), (120, 40), (80, 24)):
                    await pilot.resize_terminal(*size)
                    narrow = size[0] < 100

                    def settled(screen: Any = screen, narrow: bool = narrow) -> bool:
                        return ("Commands" in footer_keys(screen)) != narrow

                    await wait_until(pilot, settled, what=f"the footer at {size}")
                    await pilot.pause()
                    keys = footer_keys(screen)
                    for want in wanted:
                        assert want in keys and keys[want].right <= size[0], (key, size, want, keys.get(want))
                await pilot.press("escape")
                await wait_until(pilot, lambda: app.screen is app.main, what="back")

    run(body())
