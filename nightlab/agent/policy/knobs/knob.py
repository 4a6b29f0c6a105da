"""What a knob is: one literal in one file, its kind and place, and the range a search may give it (`Space`).

Shared by every scanner (Python, config files) and by the policies; nothing here reads code."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

Value = int | float | bool | str

# Kinds a policy should never search over: they change what is reproduced or how much is printed, not what is learned.
# "fixed" covers data-shape constants (input size, number of classes, vocabulary) that the code cannot survive changing.
UNTUNABLE_KINDS: frozenset[str] = frozenset({"seed", "logging", "fixed"})

_MAX_TEXT = 3_000_000  # characters; larger files are data, not code or config
_MAX_CONFIG_SCALARS = 5_000  # a YAML/JSON file with more scalars than this is a data file


@dataclass(frozen=True)
class Knob:
    """One tunable literal in one file.

    `name` is derived from structure (never from the value or an offset), so the same knob keeps its name across
    edits of the file; duplicates within a file get ``#2``, ``#3`` in source order, and `discover_files` prefixes
    ``path:`` when two files would otherwise share a name.
    """

    name: str
    path: str
    value: Value
    kind: str
    style: str  # constant | dict | dataclass | argparse | yaml | json | toml | call | signature | env | getattr
    line: int
    context: str
    choices: tuple[Value, ...] = ()  # known alternatives for "choice" knobs (and argparse `choices=`)

    @property
    def tunable(self) -> bool:
        """False for seeds, logging cadence and data-shape constants: shown, never searched."""
        return self.kind not in UNTUNABLE_KINDS


@dataclass
class Space:
    """Where a model-based search may look for a knob's value.

    `low`/`high` are ignored when `choices` is set. `allow_zero` says 0 is a meaningful special value (weight decay
    off, no clipping) even though a log-scaled range cannot contain it. `pow2` says powers of two are preferred.
    `log1m` says the value is an averaging coefficient (a momentum, Adam's β) searched on log(1 − x): what it sets is
    the horizon 1/(1 − x) of the average, so 0.99 → 0.997 is as large a move as 0.9 → 0.97, and a uniform draw over
    [0, 0.99] (median 0.5, a quarter of draws below 0.25) is not a sensible search for a β that works at 0.9–0.999.
    """

    low: float
    high: float
    log: bool
    integer: bool
    choices: list[Value] | None = None
    pow2: bool = False
    allow_zero: bool = False
    log1m: bool = False
    multiple: int = 0  # an integer knob that must stay a multiple of this (a model width split over attention heads)

    def snap(self, x: float, sig: int = 3) -> Value:
        """Clip `x` into the space and round it to something a human would write (ints, powers of two, `sig`
        significant digits), so that proposed diffs read ``lr = 0.003`` instead of ``lr = 0.0031622776601683794``."""
        if self.choices:
            return min(self.choices, key=lambda c: abs(float(c) - x) if isinstance(c, int | float) else 0.0)
        x = min(max(x, self.low), self.high)
        if self.integer:
            m = max(1, self.multiple)
            if self.pow2 and x > 0:
                cands = [2 ** math.floor(math.log2(x)), 2 ** math.ceil(math.log2(x))]
                inside = [c for c in cands if self.low <= c <= self.high and c % m == 0]
                if inside:
                    return min(inside, key=lambda c: abs(math.log2(c) - math.log2(x)))
            lo, hi = math.ceil(self.low / m) * m, math.floor(self.high / m) * m
            return int(min(max(round(x / m) * m, lo), hi)) if lo <= hi else int(min(max(round(x), lo), hi))
        if x == 0:
            return 0.0
        if self.log1m and x > 0:  # round the horizon's digits: 0.99667 reads 0.9967, not 1.0
            return min(self.high, max(self.low, 1.0 - float(f"{1.0 - x:.{sig}g}")))
        return float(f"{x:.{sig}g}")


@dataclass(frozen=True)
class _Found:
    knob: Knob
    start: int
    end: int


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def _knob_at(path: str, text: str, starts: list[int], name: str, value: Value, kind: str, style: str,
             offset: int, choices: tuple[Value, ...]) -> Knob:
    line = bisect.bisect_right(starts, offset)
    end = starts[line] - 1 if line < len(starts) else len(text)
    context = text[starts[line - 1]:end].strip()
    return Knob(name, path, value, kind, style, line, context, choices)
