"""How a metric value is written for a person: one function, so the table, the events, the status and the report
never show one number two ways (`0.61455 vs 0.6021` in an event beside `0.6145` in the table).

The table's four decimals read well for accuracies and losses (0.6000, 2.2397) and stay as they were; a value whose
fourth decimal is not its fourth significant digit keeps four significant digits instead (0.01234, 0.0001234), so a
metric around 1e-4 never collapses to 0.0000; from 1000 on, five significant digits (1234.5, 12346) rather than
noise decimals; below 1e-4 or from 1e6 on, scientific notation (1.234e-05). A change of a metric (a delta, a noise
floor) is written the same way with at least two significant digits (+0.0123, 0.0089, +3.0e-05).

Only what a person reads goes through here: the store and `--json` keep the raw floats.
"""

from __future__ import annotations

import math

__all__ = ["fmt_change", "fmt_metric", "fmt_noise"]

_DECIMALS = 4  # the table's decimals for ordinary values
_FIXED_FROM = 1e-4  # smaller magnitudes are written in scientific notation
_FIXED_BELOW = 1e6  # so are these and larger ones
_LARGE = 1000.0  # from here on significant digits, not decimals, bound the text


def _text(v: float, sig: int) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if a == 0:
        return f"{v:.{_DECIMALS}f}"
    if a < _FIXED_FROM or a >= _FIXED_BELOW:
        return f"{v:.{sig - 1}e}"
    mag = math.floor(math.log10(a))
    decimals = max(0, 4 - mag) if a >= _LARGE else max(_DECIMALS, sig - 1 - mag)
    return f"{v:.{decimals}f}"


def fmt_metric(v: float | None, missing: str = "—") -> str:
    """A metric value as every front-end shows it (0.6000, 2.2397, 0.0001234, 1234.5); `missing` for None."""
    return missing if v is None else _text(v, 4)


def fmt_change(v: float | None, missing: str = "") -> str:
    """A signed change of the metric (a gain, a delta against the baseline): +0.0123, -0.0040, +3.0e-05."""
    if v is None:
        return missing
    text = _text(v, 2)
    return text if text.startswith("-") else f"+{text}"


def fmt_noise(v: float | None, missing: str = "—") -> str:
    """An unsigned spread in the metric's units (a noise floor, a threshold): 0.0089, 0.00012, 3.0e-05."""
    return missing if v is None else _text(v, 2)
