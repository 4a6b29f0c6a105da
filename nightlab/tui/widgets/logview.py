"""The virtualised log viewer: any size of file, only the visible lines read (from indexed offsets) and drawn."""

from __future__ import annotations

from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nightlab.tui.logfiles import LineIndex
from nightlab.tui.messages import ReportsWorkerErrors
from nightlab.tui.widgets.logpane import clean

CACHE_LINES = 4000


class LogFileView(ReportsWorkerErrors, ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"logview--gutter", "logview--match", "logview--current"}
    DEFAULT_CSS = "LogFileView { height: 1fr; scrollbar-size-horizontal: 0; }"

    class Indexed(Message):
        def __init__(self, changed: bool) -> None:
            super().__init__()
            self.changed = changed

    def __init__(self, path: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = LineIndex(path)
        self.follow = True
        self.needle = ""
        self.current: int | None = None
        self._cache: dict[int, str] = {}
        self._indexing = False

    def on_mount(self) -> None:
        self.reindex()
        self.set_interval(0.5, self.reindex)

    def on_unmount(self) -> None:
        self.index.close()

    def reindex(self) -> None:
        if not self._indexing:
            self._indexing = True
            self._update_index()

    @work(thread=True, group="index", exit_on_error=False, name="log index")
    def _update_index(self) -> None:
        changed = self.index.update()
        self.post_message(self.Indexed(changed))

    def on_log_file_view_indexed(self, message: Indexed) -> None:
        message.stop()
        self._indexing = False
        if not message.changed:
            return
        n = self.index.line_count
        self._cache.pop(n - 2, None)  # the previously unfinished last line may have grown
        self._cache.pop(n - 1, None)
        self.virtual_size = Size(self._gutter + 400, n)
        self.border_title = f"{n:,} lines"
        if self.follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()

    @property
    def _gutter(self) -> int:
        return max(4, len(str(self.index.line_count))) + 1

    def line_text(self, i: int) -> str:
        text = self._cache.get(i)
        if text is None:
            if len(self._cache) > CACHE_LINES:
                self._cache.clear()
            text = self._cache[i] = clean(self.index.line(i))
        return text

    def top_line(self) -> int:
        return int(self.scroll_y)

    def go_to(self, line: int) -> None:
        """Show `line` near the top third of the view and mark it as the current match."""
        self.follow = False
        self.current = line
        self.scroll_to(y=max(0, line - self.size.height // 3), animate=False)
        self.refresh()

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        if follow:
            self.scroll_end(animate=False)

    def action_scroll_up(self) -> None:
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        idx = int(self.scroll_y) + y
        if idx >= self.index.line_count:
            return Strip.blank(width, base)
        gutter = self._gutter
        gstyle = base + self.get_component_rich_style("logview--gutter", partial=True)
        text = self.line_text(idx)
        line_style: Style = base
        if idx == self.current:
            line_style = base + self.get_component_rich_style("logview--current", partial=True)
        segs = [Segment(text, line_style)]
        if self.needle:
            low, needle = text.lower(), self.needle.lower()
            pos = low.find(needle)
            if pos >= 0:
                mstyle = line_style + self.get_component_rich_style("logview--match", partial=True)
                segs = []
                start = 0
                while pos >= 0:
                    segs.append(Segment(text[start:pos], line_style))
                    segs.append(Segment(text[pos:pos + len(needle)], mstyle))
                    start = pos + len(needle)
                    pos = low.find(needle, start)
                segs.append(Segment(text[start:], line_style))
        body = Strip(segs).crop_extend(int(self.scroll_x), int(self.scroll_x) + width - gutter, line_style)
        num = Strip([Segment(f"{idx + 1:>{gutter - 1}} ", gstyle)])
        return Strip.join([num, body])
