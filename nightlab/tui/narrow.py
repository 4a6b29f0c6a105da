"""Below NARROW columns a screen folds what it can spare and its footer gets compact, so every key it shows still
fits at 80 columns (ctrl+p stays listed in `?`). One rule for every full screen: the main screen, the review, the
log viewer."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer

NARROW = 100


def fit_to_width(screen: Screen[Any]) -> None:
    """Set the screen's -narrow class and its footer's compactness from its width (call on mount and on resize).
    The footer redraws its keys only when the bindings change, not on its settings: a terminal narrowed while open
    kept the ctrl+p entry and lost Quit and Keys off the right edge, so the bindings are refreshed on a change."""
    narrow = 0 < screen.size.width < NARROW
    screen.set_class(narrow, "-narrow")
    for footer in screen.query(Footer):
        footer.compact = narrow
        if footer.show_command_palette == narrow:
            footer.show_command_palette = not narrow
            screen.refresh_bindings()
