"""A diff, unified or side by side, with syntax colour; only the visible rows are rendered."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nightlab.tui.diffparse import DiffLine, FileDiff, side_by_side

NO_W = 5


@lru_cache(maxsize=64)
def _lexer_for(path: str) -> str | None:
    try:
        from pygments.lexers import get_lexer_for_filename
        from pygments.util import ClassNotFound
    except ImportError:  # pragma: no cover - pygments comes with rich
        return None
    try:
        return str(get_lexer_for_filename(path).aliases[0])
    except (ClassNotFound, IndexError):
        return None


def _fg_only(style: str | Style) -> Style:
    st = Style.parse(style) if isinstance(style, str) else style
    return Style(color=st.color, bold=st.bold, italic=st.italic, underline=st.underline)


@dataclass(frozen=True)
class _Row:
    kind: str  # file | unified | split
    file: int
    line: DiffLine | None = None
    left: DiffLine | None = None
    right: DiffLine | None = None


class DiffView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"diff--added", "diff--removed", "diff--hunk", "diff--lineno", "diff--file", "diff--empty",
                         "diff--marker-add", "diff--marker-del"}
    DEFAULT_CSS = "DiffView { height: 1fr; scrollbar-size-horizontal: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list[FileDiff] = []
        self.split = False
        self.syntax_theme = "monokai"
        self.rows: list[_Row] = []
        self.file_rows: list[int] = []
        self.code_width = 0
        self._hl: dict[tuple[str, str | None], Text] = {}

    def set_diff(self, files: list[FileDiff]) -> None:
        self.files = files
        self._layout()

    def set_split(self, split: bool) -> None:
        self.split = split
        self._layout()

    def set_syntax_theme(self, name: str) -> None:
        self.syntax_theme = name
        self._hl.clear()
        self.refresh()

    def _layout(self) -> None:
        rows: list[_Row] = []
        self.file_rows = []
        for i, f in enumerate(self.files):
            self.file_rows.append(len(rows))
            rows.append(_Row("file", i))
            if self.split:
                rows.extend(_Row("split", i, left=a, right=b) for a, b in side_by_side(f))
            else:
                rows.extend(_Row("unified", i, line=ln) for ln in f.lines)
        self.rows = rows
        self.code_width = max((len(ln.text.expandtabs(4)) for f in self.files for ln in f.lines), default=0)
        self._size_virtual()
        self.refresh()

    def _size_virtual(self) -> None:
        """Wide enough for the longest line (left / right scroll it; the line numbers stay put)."""
        width = self.scrollable_content_region.width or self.size.width
        fixed = NO_W * (1 if self.split else 2) + 2
        shown = ((width - 1) // 2 if self.split else width) - fixed  # code cells one line shows
        self.virtual_size = Size(width + max(0, self.code_width + 1 - shown), len(self.rows))

    def scroll_to_file(self, i: int) -> None:
        if 0 <= i < len(self.file_rows):
            self.scroll_to(y=self.file_rows[i], animate=False)

    def file_at_top(self) -> int:
        y = int(self.scroll_y)
        current = 0
        for i, start in enumerate(self.file_rows):
            if start <= y:
                current = i
        return current

    # -------------------------------------------------------------------------------- rendering
    def _highlight(self, text: str, path: str) -> Text:
        lexer = _lexer_for(path)
        key = (text, lexer)
        hit = self._hl.get(key)
        if hit is None:
            if len(self._hl) > 5000:
                self._hl.clear()
            if lexer is None:
                hit = Text(text)
            else:
                raw = Syntax(text, lexer, theme=self.syntax_theme).highlight(text)
                raw.rstrip()
                # token colours only: the line's own background (added / removed) must show through
                hit = Text(raw.plain, spans=[Span(sp.start, sp.end, _fg_only(sp.style)) for sp in raw.spans])
            self._hl[key] = hit
        return hit

    def _cell(self, ln: DiffLine | None, path: str, width: int, side: str) -> list[Segment]:
        """One side's line: number gutter, marker, highlighted code, padded to `width` cells."""
        base = self.rich_style
        if ln is None:
            return [Segment(" " * width, base + self.get_component_rich_style("diff--empty", partial=True))]
        if ln.kind in ("hunk", "meta"):
            hunk = base + self.get_component_rich_style("diff--hunk", partial=True)
            return list(Strip([Segment(ln.text, hunk)]).crop_extend(0, width, hunk))
        nos = [ln.old_no if side == "old" else ln.new_no] if side != "both" else [ln.old_no, ln.new_no]
        line_style = base
        marker = " "
        marker_style = base
        if ln.kind == "add":
            line_style = base + self.get_component_rich_style("diff--added", partial=True)
            marker = "+"
            marker_style = line_style + self.get_component_rich_style("diff--marker-add", partial=True)
        elif ln.kind == "del":
            line_style = base + self.get_component_rich_style("diff--removed", partial=True)
            marker = "-"
            marker_style = line_style + self.get_component_rich_style("diff--marker-del", partial=True)
        lineno = self.get_component_rich_style("diff--lineno", partial=True)
        code = self._highlight(ln.text.expandtabs(4), path).copy()
        code.stylize_before(line_style)
        gutter = "".join(f"{no if no is not None else '':>{NO_W - 1}} " for no in nos)
        segs = [Segment(gutter, line_style + lineno), Segment(marker + " ", marker_style)]
        fixed = len(gutter) + 2
        x = int(self.scroll_x)
        body = Strip(list(code.render(self.app.console))).crop_extend(x, x + max(0, width - fixed), line_style)
        return list(Strip([*segs, *body]).crop_extend(0, width, line_style))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        idx = int(self.scroll_y) + y
        if idx >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[idx]
        f = self.files[row.file]
        if row.kind == "file":
            fstyle: Style = base + self.get_component_rich_style("diff--file", partial=True)
            label = f" {f.label}  +{f.added} −{f.removed}"
            return Strip([Segment(label, fstyle)]).crop_extend(0, width, fstyle)
        if row.kind == "unified":
            return Strip(self._cell(row.line, f.path, width, "both"))
        half = (width - 1) // 2
        sep = [Segment("│", base + self.get_component_rich_style("diff--lineno", partial=True))]
        return Strip(self._cell(row.left, f.old_path if f.old_path != "/dev/null" else f.path, half, "old") + sep
                     + self._cell(row.right, f.path, width - half - 1, "new"))

    def on_resize(self) -> None:
        self._size_virtual()
