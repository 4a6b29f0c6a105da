"""The live log pane: follows a job's log with bounded memory and bounded UI work, however fast the job prints.

A thread worker polls the file ~20 times a second and appends complete lines to a shared buffer; it posts a
message only when none is already on its way, so a flood becomes one message per frame, never a queue that
starves key presses. Only the last `max_lines` lines are held (the full log stays on disk: `l` opens it in the
virtualised viewer) and only the visible lines are ever rendered.

Long lines wrap at the pane's width by default (`w` toggles): at 80 columns the pane is about 44 wide, and a
training line read through a sideways scroll is a line not read. Wrapping keeps a list of (line, start column)
rows, extended as lines arrive and rebuilt only when the width changes or old lines are dropped.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from nightlab.agent.terminal_text import printable
from nightlab.tui.logfiles import TailReader
from nightlab.tui.messages import ReportsWorkerErrors

POLL_S = 0.05
IDLE_POLL_S = 0.25
_ERROR = re.compile(r"error|traceback|exception|\bnan\b|killed|out of memory", re.I)
_WARN = re.compile(r"warn", re.I)


def clean(line: str) -> str:
    """What a terminal would show, minus colour codes and every control sequence or character (they would corrupt
    the screen, or act beyond it: Textual writes the text as it is; agent/terminal_text.py)."""
    line = printable(line)
    return line.expandtabs() if "\t" in line else line


class Pending:
    """Lines read but not yet shown, shared between the tail thread and the UI thread."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.posted = False
        self.total = 0

    def push(self, lines: list[str]) -> bool:
        """Add lines; True if the caller should post a message (none is in flight)."""
        with self.lock:
            self.lines.extend(lines)
            self.total += len(lines)
            if len(self.lines) > self.cap:
                del self.lines[: len(self.lines) - self.cap]
            if self.posted:
                return False
            self.posted = True
            return True

    def take(self) -> list[str]:
        with self.lock:
            lines, self.lines = self.lines, []
            self.posted = False
            return lines


class LogTail(ReportsWorkerErrors, ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"logtail--error", "logtail--warning", "logtail--dim"}
    DEFAULT_CSS = "LogTail { height: 1fr; }"

    class Batch(Message):
        def __init__(self, pending: Pending) -> None:
            super().__init__()
            self.pending = pending

    def __init__(self, *, max_lines: int = 5000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: list[str] = []
        self._follow = True
        self.path: Path | None = None
        self.placeholder = ""
        self.received = 0  # lines shown since the file was opened (for the benchmark and the title)
        self._width = 0
        self._pending: Pending | None = None
        self._wrap = True
        self._rows: list[tuple[int, int]] = []  # wrapping: (index in self.lines, start column) per row shown
        self._wrap_width = 0  # the width self._rows were cut for (0: not cut yet)

    @property
    def follow(self) -> bool:
        """Whether the view stays at the bottom as lines arrive (until the user scrolls up, or presses f)."""
        return self._follow

    @follow.setter
    def follow(self, follow: bool) -> None:
        self._follow = follow
        if self.is_mounted:
            # Textual's anchor keeps the view at the bottom on every layout, so following never depends on a
            # scroll computed before the layout of the last batch caught up (a scroll_end alone could land one
            # layout short and stay there once the job went quiet)
            self.anchor(follow)

    def on_mount(self) -> None:
        self.anchor(self._follow)

    # -------------------------------------------------------------------------------- data in
    def watch_file(self, path: Path | None, placeholder: str = "") -> None:
        """Follow `path` (None: show the placeholder). Re-opening the same path keeps what is shown."""
        if path == self.path and self._pending is not None:
            return
        self.path = path
        self.placeholder = placeholder
        self.clear()
        if path is None:
            self._pending = None
            self.workers.cancel_group(self, "tail")
            return
        self._pending = Pending(self.max_lines)
        self._tail(path, self._pending)

    def clear(self) -> None:
        self.lines = []
        self._rows = []
        self.received = 0
        self._width = 0
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False, name="log tail")
    def _tail(self, path: Path, pending: Pending) -> None:
        worker = get_current_worker()
        reader = TailReader(path)
        idle_since = time.monotonic()
        try:
            while not worker.is_cancelled and pending is self._pending:
                lines = reader.read()
                if lines:
                    idle_since = time.monotonic()
                    if pending.push(lines):
                        self.post_message(self.Batch(pending))
                    time.sleep(POLL_S)
                else:
                    time.sleep(POLL_S if time.monotonic() - idle_since < 2.0 else IDLE_POLL_S)
        finally:
            reader.close()

    def on_log_tail_batch(self, message: Batch) -> None:
        message.stop()
        if message.pending is not self._pending:
            return
        self.append(message.pending.take())

    def append(self, lines: list[str]) -> None:
        """Add lines at the bottom (drops the oldest beyond max_lines) and keep the bottom in view if following."""
        if not lines:
            return
        self.received += len(lines)
        lines = [clean(x) for x in lines]  # once, here: rendering and wrapping measure what is shown
        first = len(self.lines)
        self.lines.extend(lines)
        if self._wrapping:
            self._extend_rows(first)
        excess = len(self.lines) - self.max_lines
        if excess > self.max_lines // 5 or (excess > 0 and len(lines) >= excess):
            del self.lines[:excess]
            dropped = excess
            if self._wrapping:
                kept = [(i - excess, c) for i, c in self._rows if i >= excess]
                dropped = len(self._rows) - len(kept)
                self._rows = kept
            if not self.follow:
                self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self._width = max(self._width, min(1000, max(map(len, lines))))
        self._resize_virtual()
        if self.follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        if follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    # -------------------------------------------------------------------------------- wrapping
    @property
    def wrap(self) -> bool:
        """Whether long lines wrap at the pane's width (else they run on, read with a sideways scroll)."""
        return self._wrap

    @wrap.setter
    def wrap(self, wrap: bool) -> None:
        if wrap == self._wrap:
            return
        self._wrap = wrap
        self._wrap_width = 0
        self._rows = []
        if self.is_mounted:
            self._cut_rows()
            self._resize_virtual()
            if self.follow:
                self.scroll_end(animate=False, immediate=False, x_axis=False)
            self.refresh()

    @property
    def _wrapping(self) -> bool:
        return self._wrap and self._wrap_width > 0

    def _text_width(self) -> int:
        return max(0, self.scrollable_content_region.width)

    def _cut_rows(self) -> None:
        """Cut every line into rows at the current width (when wrapping and the width is known)."""
        width = self._text_width() if self._wrap else 0
        self._wrap_width = width
        self._rows = []
        if width > 0:
            self._extend_rows(0)

    def _extend_rows(self, first: int) -> None:
        w = self._wrap_width
        rows = self._rows
        for i in range(first, len(self.lines)):
            n = len(self.lines[i])
            if n <= w:
                rows.append((i, 0))
            else:
                rows.extend((i, c) for c in range(0, n, w))

    def _resize_virtual(self) -> None:
        if self._wrapping:
            self.virtual_size = Size(self._wrap_width, len(self._rows))
        else:
            self.virtual_size = Size(self._width, len(self.lines))

    # -------------------------------------------------------------------------------- user scrolling
    def action_scroll_up(self) -> None:
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow = True
        super().action_scroll_end()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False
        super()._on_mouse_scroll_up(event)

    # -------------------------------------------------------------------------------- rendering
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.lines:
            if y == 0 and self.placeholder:
                dim = base + self.get_component_rich_style("logtail--dim", partial=True)
                return Strip([Segment(self.placeholder, dim)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if self._wrap and 0 < width != self._wrap_width:
            # the first frame with a width, a resize, or a scrollbar that came or went: cut the rows again (a
            # following view stays at the bottom through Textual's anchor)
            self._cut_rows()
            self._resize_virtual()
        idx = int(self.scroll_y) + y
        if self._wrapping:
            if idx >= len(self._rows):
                return Strip.blank(width, base)
            line, start = self._rows[idx]
            full = self.lines[line]
            text = full[start:start + self._wrap_width]
        else:
            if idx >= len(self.lines):
                return Strip.blank(width, base)
            full = text = self.lines[idx]
        style: Style = base
        if _ERROR.search(full):  # a wrapped line keeps its colour on every row
            style = base + self.get_component_rich_style("logtail--error", partial=True)
        elif _WARN.search(full):
            style = base + self.get_component_rich_style("logtail--warning", partial=True)
        x = 0 if self._wrapping else int(self.scroll_x)
        return Strip([Segment(text, style)]).crop_extend(x, x + width, base)
