"""Reading logs without holding them: a tail reader for the live pane and a line index for the big-log viewer.

The live pane only ever sees the last lines (the file on disk keeps everything); the viewer indexes line offsets
(numpy, so a 100 MB log indexes in a fraction of a second) and reads just the lines on screen with `os.pread`,
toolong's approach. Both are plain Python, used from thread workers; nothing here imports textual.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from nightlab.agent.views import open_log

if TYPE_CHECKING:
    import numpy as np

INITIAL_TAIL_BYTES = 256 * 1024
MAX_READ = 4 << 20
MAX_PARTIAL = 64 * 1024


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _last_cr_segment(line: str) -> str:
    """Progress bars redraw with \r: show what the terminal would show, the last segment."""
    if "\r" in line:
        parts = [p for p in line.split("\r") if p]
        return parts[-1] if parts else ""
    return line


class TailReader:
    """Hands out the complete new lines of a growing file, starting near its end.

    Handles a file that does not exist yet (the job has not started), and one that shrank or was replaced (a
    re-run writes a fresh log): it starts over from the top.
    """

    def __init__(self, path: Path | str, initial_bytes: int = INITIAL_TAIL_BYTES) -> None:
        self.path = Path(path)
        self.initial_bytes = initial_bytes
        self._fd: int | None = None
        self._ino: int | None = None
        self._pos = 0
        self._partial = b""
        self.skipped_bytes = 0  # bytes before the tail we started from (on disk, not in memory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> bool:
        try:
            fd = open_log(self.path)
        except OSError:
            return False
        st = os.fstat(fd)
        self._fd, self._ino = fd, st.st_ino
        self._partial = b""
        if st.st_size > self.initial_bytes:
            start = st.st_size - self.initial_bytes
            # start at the first whole line: from the byte before `start`, skip up to and including a newline
            chunk = os.pread(fd, min(self.initial_bytes, MAX_PARTIAL) + 1, start - 1)
            nl = chunk.find(b"\n")
            self._pos = start - 1 + (nl + 1 if nl >= 0 else 1)
            self.skipped_bytes = self._pos
        else:
            self._pos = 0
            self.skipped_bytes = 0
        return True

    def read(self) -> list[str]:
        """New complete lines since the last call (an over-long unterminated line is returned in pieces)."""
        if self._fd is None and not self._open():
            return []
        assert self._fd is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self._ino or st.st_size < self._pos:
            self.close()
            if not self._open():
                return []
            assert self._fd is not None
        data = os.pread(self._fd, MAX_READ, self._pos)
        if not data:
            return []
        self._pos += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > MAX_PARTIAL:
                self._partial = b""
                return [_last_cr_segment(_decode(data))]
            self._partial = data
            return []
        self._partial = data[cut + 1:]
        text = _decode(data[:cut])
        lines = text.split("\n")
        if "\r" in text:
            lines = [_last_cr_segment(x) for x in lines]
        return lines

    def flush(self) -> list[str]:
        """The unterminated last line, once the job has ended and nothing more will come."""
        rest, self._partial = self._partial, b""
        return [_last_cr_segment(_decode(rest))] if rest else []


class LineIndex:
    """Byte offsets of every line of a file, grown incrementally as the file grows.

    `update()` runs in a worker; `line()` and `line_count` are read from the UI thread. Offsets are appended
    before the count is published, so a reader never sees a line whose end is not known.
    """

    def __init__(self, path: Path | str) -> None:
        import numpy as np  # imported by the first index (the log viewer), not before the TUI's first frame

        self._np = np
        self.path = Path(path)
        self._starts: np.ndarray = np.zeros(1024, dtype=np.int64)  # start offset of each line; _starts[0] = 0
        self._n = 0  # complete lines
        self._indexed = 0  # bytes scanned
        self._size = 0  # file size at the last update (the tail after the last newline is one more line)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ino: int | None = None

    @property
    def line_count(self) -> int:
        return self._n + (1 if self._size > self._indexed else 0)

    @property
    def size(self) -> int:
        return self._size

    def _ensure_fd(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = open_log(self.path)
                self._ino = os.fstat(self._fd).st_ino
            except OSError:
                return None
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def update(self, block: int = 8 << 20) -> bool:
        """Index what was appended since the last call; True if the line count changed."""
        with self._lock:
            fd = self._ensure_fd()
            if fd is None:
                return False
            before = self.line_count
            try:
                size = os.stat(self.path).st_size
                if os.stat(self.path).st_ino != self._ino or size < self._indexed:
                    self.close()
                    self._n = self._indexed = self._size = 0
                    fd = self._ensure_fd()
                    if fd is None:
                        return True
            except OSError:
                return False
            while self._indexed < size:
                chunk = os.pread(fd, min(block, size - self._indexed), self._indexed)
                if not chunk:
                    break
                np = self._np
                nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + (self._indexed + 1)
                if nl.size:
                    need = self._n + 1 + nl.size
                    if need > self._starts.size:
                        grown = np.zeros(max(need, self._starts.size * 2), dtype=np.int64)
                        grown[: self._n + 1] = self._starts[: self._n + 1]
                        self._starts = grown
                    self._starts[self._n + 1: self._n + 1 + nl.size] = nl
                    self._n += int(nl.size)
                self._indexed += len(chunk)
            self._size = size
            # the bytes after the last newline form one more (unfinished) line
            self._indexed = int(self._starts[self._n])
            return self.line_count != before

    def span(self, i: int) -> tuple[int, int]:
        """Byte range of line i, without its newline."""
        start = int(self._starts[i])
        end = int(self._starts[i + 1]) - 1 if i < self._n else self._size
        return start, max(start, end)

    def line(self, i: int, limit: int = 4096) -> str:
        """Line i (0-based), at most `limit` bytes of it."""
        if i < 0 or i >= self.line_count:
            return ""
        fd = self._ensure_fd()
        if fd is None:
            return ""
        start, end = self.span(i)
        data = os.pread(fd, min(end - start, limit), start)
        return _last_cr_segment(_decode(data).rstrip("\r"))

    def line_of(self, offset: int) -> int:
        return max(0, int(self._np.searchsorted(self._starts[: self._n + 1], offset, side="right")) - 1)

    def find(self, needle: str, start_line: int, forward: bool = True, block: int = 4 << 20) -> int | None:
        """The next line (after / before `start_line`) containing `needle`, case-insensitively; None if none."""
        fd = self._ensure_fd()
        if fd is None or not needle:
            return None
        pat = needle.lower().encode()
        over = len(pat) - 1
        size = self._size
        if forward:
            if start_line + 1 >= self.line_count:
                return None
            pos = self.span(start_line + 1)[0]
            while pos < size:
                chunk = os.pread(fd, min(block, size - pos), pos).lower()
                hit = chunk.find(pat)
                if hit >= 0:
                    return self.line_of(pos + hit)
                if len(chunk) <= over:
                    break
                pos += len(chunk) - over
            return None
        if start_line <= 0:
            return None
        end = self.span(start_line - 1)[1]
        while end > 0:
            begin = max(0, end - block)
            chunk = os.pread(fd, end - begin, begin).lower()
            hit = chunk.rfind(pat)
            if hit >= 0:
                return self.line_of(begin + hit)
            if begin == 0:
                break
            end = begin + over
        return None

    def count(self, needle: str, before_line: int | None = None, block: int = 4 << 20) -> int:
        """How many times `needle` occurs (case-insensitively) in the indexed text, or before `before_line` only:
        the search's `3/17`."""
        fd = self._ensure_fd()
        if fd is None or not needle:
            return 0
        pat = needle.lower().encode()
        end = self._size if before_line is None else self.span(min(before_line, self.line_count - 1))[0]
        total, pos, tail = 0, 0, b""
        while pos < end:
            chunk = tail + os.pread(fd, min(block, end - pos), pos).lower()
            pos += len(chunk) - len(tail)
            total += chunk.count(pat)
            # the end of the chunk that could start a match crossing into the next one (too short to hold one)
            tail = chunk[len(chunk) - len(pat) + 1:] if len(pat) > 1 else b""
        return total
