"""The metric's direction as a value that knows how to compare: one `Goal` instead of `sign = ±1` copies.

`Goal.MAXIMIZE.better_than(0.9, 0.8)` is True; `Goal.MINIMIZE.gain(0.8, 0.9)` is +0.1 (how far the first value
improves on the second, in the goal's direction). It is a `StrEnum`, so it is written to `nightlab.toml` and read
from a config as the plain words `maximize` / `minimize`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Goal(StrEnum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @property
    def sign(self) -> float:
        """+1 when larger is better, -1 when smaller is."""
        return 1.0 if self is Goal.MAXIMIZE else -1.0

    def gain(self, new: float, old: float) -> float:
        """How much `new` improves on `old`: positive when it is better, in the metric's own units."""
        return self.sign * (new - old)

    def better_than(self, new: float, old: float, margin: float = 0.0) -> bool:
        """True when `new` beats `old` by more than `margin` (0: strictly better)."""
        return self.gain(new, old) > margin

    def best(self, values: Iterable[float]) -> float | None:
        """The best of `values` (the first of equals), None when there are none."""
        out: float | None = None
        for v in values:
            if out is None or self.better_than(v, out):
                out = v
        return out

    def rank_key(self, value: float | None) -> tuple[bool, float]:
        """A sort key that puts the best value first and missing values last."""
        return (value is None, -self.sign * value if value is not None else 0.0)


__all__ = ["Goal"]
