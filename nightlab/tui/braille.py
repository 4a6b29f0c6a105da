"""A tiny braille plotter: each terminal cell holds a 2x4 grid of dots, so a 40x8 cell chart has 80x32 points.

Kept free of textual so it is trivially testable; widgets turn its cells into styled text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# dot bit for (dx, dy) inside a cell, dy counted from the top
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
BLANK = "\u2800"


class Canvas:
    """A grid of braille cells; every dot remembers which series drew it last (for colour)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = max(1, width)
        self.height = max(1, height)
        self.bits = [[0] * self.width for _ in range(self.height)]
        self.series = [[-1] * self.width for _ in range(self.height)]

    @property
    def dots_x(self) -> int:
        return self.width * 2

    @property
    def dots_y(self) -> int:
        return self.height * 4

    def dot(self, x: int, y: int, series: int = 0) -> None:
        """Set the dot at (x, y), y = 0 at the bottom."""
        if not (0 <= x < self.dots_x and 0 <= y < self.dots_y):
            return
        ty = self.dots_y - 1 - y
        row, col = ty // 4, x // 2
        self.bits[row][col] |= _BITS[ty % 4][x % 2]
        self.series[row][col] = series

    def line(self, x0: int, y0: int, x1: int, y1: int, series: int = 0) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), series)

    def cells(self) -> list[list[tuple[str, int]]]:
        """Rows of (character, series index or -1)."""
        return [[(chr(0x2800 + b) if b else " ", s) for b, s in zip(brow, srow, strict=True)]
                for brow, srow in zip(self.bits, self.series, strict=True)]


def value_range(values: Sequence[float]) -> tuple[float, float]:
    """Min and max of the finite values, widened a little so flat series still have height."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def plot(canvas: Canvas, xs: Sequence[float], ys: Sequence[float], series: int, *, x_range: tuple[float, float],
         y_range: tuple[float, float], connect: bool = True) -> None:
    """Draw points (and the segments between consecutive ones) scaled into the canvas."""
    x0, x1 = x_range
    y0, y1 = y_range
    sx = (canvas.dots_x - 1) / ((x1 - x0) or 1.0)
    sy = (canvas.dots_y - 1) / ((y1 - y0) or 1.0)
    prev: tuple[int, int] | None = None
    for x, y in zip(xs, ys, strict=True):
        if not (math.isfinite(x) and math.isfinite(y)):
            prev = None
            continue
        px = round((x - x0) * sx)
        py = round((min(max(y, y0), y1) - y0) * sy)
        if connect and prev is not None:
            canvas.line(prev[0], prev[1], px, py, series)
        elif connect:
            canvas.dot(px, py, series)
        else:  # a marker: a 2x2 block of dots so single points stay visible
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
                canvas.dot(min(px + dx, canvas.dots_x - 1) if px % 2 == 0 else px - 1 + dx,
                           min(py + dy, canvas.dots_y - 1), series)
        prev = (px, py)


def downsample(points: Sequence[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most `limit` points, evenly spaced, always keeping the last one."""
    if len(points) <= limit or limit < 2:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]
