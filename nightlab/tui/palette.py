"""The command palette's screen: Textual's CommandPalette over a dimmed picture of the screen behind, taken once.

Textual's palette is a translucent screen: every time any part of it changes (the list filling in, each key typed,
the cursor blinking, the log pane behind it growing) it re-renders the whole screen below through a tint, colour by
colour. The first opening paid for that several times over. Here the dimmed picture is rendered once per size and
reused, so the palette costs what its own widgets cost; what is behind it stands still while it is open.
"""

from __future__ import annotations

from typing import Any

from textual.command import CommandPalette
from textual.geometry import Size
from textual.renderables.background_screen import BackgroundScreen
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual, visualize

PALETTE_ID = "--command-palette"  # the id Textual gives its own palette (tests and key handling look for it)


class FrozenStrips(Visual):
    """Lines already rendered, handed back as they are."""

    def __init__(self, strips: list[Strip]) -> None:
        self.strips = strips

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        return self.strips

    def get_optimal_width(self, rules: Any, container_width: int) -> int:
        return container_width

    def get_height(self, rules: Any, width: int) -> int:
        return len(self.strips)


class Palette(CommandPalette):
    """CommandPalette whose dimmed background is rendered once per terminal size (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(id=PALETTE_ID)
        self._behind: tuple[Size, FrozenStrips] | None = None
        self.background_renders = 0  # how often the dimmed picture was made (once per size)

    def render(self) -> Any:
        size = self.size
        if self._behind is None or self._behind[0] != size:
            tinted = super().render()  # the screen below through the tint, as Textual draws it
            if not isinstance(tinted, BackgroundScreen):  # rendered outside a frame (nothing below to picture)
                return tinted
            strips = Visual.to_strips(self, visualize(self, tinted), size.width, size.height, self.visual_style)
            self._behind = (size, FrozenStrips(strips))
            self.background_renders += 1
        return self._behind[1]
