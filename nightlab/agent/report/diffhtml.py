"""The best change's diff as highlighted HTML (pygments, inline styles: the page carries no stylesheet to lose).

Added and removed lines are told apart by their `+` / `-` and by a tinted background in blue and vermillion
(Okabe-Ito, not red and green), so the diff reads in a grey-scale print and for colour-blind readers.
"""

from __future__ import annotations

import html

MAX_DIFF_LINES = 2000


def _style() -> type:
    from pygments.style import Style
    from pygments.token import Generic, Text

    class ReportDiffStyle(Style):
        background_color = "#fbfbfb"
        styles = {
            Text: "#1a1a1a",
            Generic.Inserted: "#003f66 bg:#dcecf7",
            Generic.Deleted: "#7a2f00 bg:#fbe3d3",
            Generic.Heading: "bold #1a1a1a",
            Generic.Subheading: "#555555 bg:#eeeeee",
        }

    return ReportDiffStyle


def diff_html(diff: str) -> str:
    """A <pre> block of the diff, highlighted; the plain text escaped if pygments cannot be loaded."""
    lines = diff.splitlines()
    clipped = len(lines) > MAX_DIFF_LINES
    if clipped:
        diff = "\n".join(lines[:MAX_DIFF_LINES]) + f"\n… {len(lines) - MAX_DIFF_LINES} more line(s)\n"
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import DiffLexer
    except ImportError:  # pragma: no cover - pygments comes with textual
        return f'<pre class="diff">{html.escape(diff)}</pre>'
    formatter = HtmlFormatter(style=_style(), noclasses=True, nobackground=False, cssclass="diff")
    return str(highlight(diff, DiffLexer(), formatter))
