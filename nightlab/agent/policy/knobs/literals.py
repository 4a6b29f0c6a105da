"""Writing a new value in the style of the literal it replaces (``3e-4`` stays e-notation, ``True`` stays a Python
bool, ``yes`` a YAML one), so the diff a person reviews shows one literal changed and nothing else."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import yaml

from nightlab.agent.policy.knobs.knob import Value

_NUMBER = re.compile(r"[+-]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?")
_INT_TEXT = re.compile(r"[+-]?\d[\d_]*")


def _parse_number(s: str) -> int | float | None:
    """A number written as text (``"0.01"``, ``"1e-3"``, ``"10_000"``), or None — never nan/inf."""
    s = s.strip()
    if not _NUMBER.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    try:
        if _INT_TEXT.fullmatch(s):
            return int(s.replace("_", ""))
        f = float(s.replace("_", ""))
    except ValueError:
        return None
    return f if math.isfinite(f) else None


_BOOL_PAIRS = (("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("yes", "no"), ("Yes", "No"), ("YES", "NO"),
               ("on", "off"), ("On", "Off"), ("ON", "OFF"))
_PY_STRING = re.compile(r"(?s)([rRuU]*)('''|\"\"\"|'|\")(.*)\2")
_E_STYLE = re.compile(r"([0-9._]*)([eE])([+-]?)([0-9_]+)")
_PLAIN_YAML = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def format_value(new_value: Value, old_literal: str, *, integer: bool | None = None) -> str:
    """`new_value` written the way `old_literal` was: ``1e-3`` stays in e-notation, ``0.001`` in decimal, ints as
    ints (with ``_`` grouping if the old one had it), booleans in the old spelling (True / true / yes), strings in
    the old quotes. `integer` overrides whether the result is an int (default: whatever the old literal was).

    Floats are written with their shortest exact repr, so the value read back is exactly `new_value`; rounding for
    readability is the caller's choice (see `Space.snap`). Raises ValueError for nan/inf and TypeError for a value
    that cannot replace this literal (a number for a plain word).
    """
    old = re.sub(r"^([+-])\s+", r"\1", old_literal.strip())  # "- 2e-3" (a CST unary with a space) → "-2e-3"
    if isinstance(new_value, float) and not math.isfinite(new_value):
        raise ValueError(f"refusing to write non-finite value {new_value!r}")
    m = _PY_STRING.fullmatch(old)
    if m:
        prefix, quote, inner = m.groups()
        if isinstance(new_value, str):
            return _format_str(new_value, prefix, quote)
        return f"{prefix}{quote}{format_value(new_value, inner, integer=integer)}{quote}"
    if isinstance(new_value, bool):
        for t, f in _BOOL_PAIRS:
            if old in (t, f):
                return t if new_value else f
        if _parse_number(old) is not None:
            return str(int(new_value))
        return "True" if new_value else "False"
    is_number = _parse_number(old) is not None or old.lstrip("+-").lower().startswith(("0x", "0o", "0b"))
    if isinstance(new_value, str):
        if is_number or any(old in pair for pair in _BOOL_PAIRS):
            raise TypeError(f"cannot write string {new_value!r} over {old!r}")
        if _PLAIN_YAML.fullmatch(new_value) and yaml.safe_load(new_value) == new_value:
            return new_value
        return json.dumps(new_value)
    if not is_number:
        raise TypeError(f"cannot write {new_value!r} over {old!r}")
    body = old.lstrip("+-").strip()
    old_is_int = bool(_INT_TEXT.fullmatch(body)) or body.lower().startswith(("0x", "0o", "0b"))
    as_int = old_is_int if integer is None else integer
    if as_int:
        v = round(new_value)
        if body.lower().startswith("0x"):
            digits = f"{abs(v):x}"
            return f"{'-' if v < 0 else ''}{body[:2]}{digits}"
        return f"{v:_}" if "_" in body else str(v)
    x = float(new_value)
    sign = "-" if x < 0 or (x == 0 and math.copysign(1.0, x) < 0 and old.startswith("-")) else ""
    x = abs(x)
    if old_is_int:  # an int literal that must become a float: pick the clearer notation
        text = repr(x)
        if "e" in text:
            return sign + _format_e(x, "1e-5")
        return sign + text
    if _E_STYLE.fullmatch(body):
        return sign + _format_e(x, body)
    return sign + _format_decimal(x, body)


def _format_str(value: str, prefix: str, quote: str) -> str:
    q = quote[0]
    if q not in value and "\\" not in value and "\n" not in value and "\r" not in value:
        return f"{prefix}{quote}{value}{quote}"
    return json.dumps(value)  # a double-quoted literal valid in Python, YAML and JSON alike


def _digits(x: float) -> tuple[str, int]:
    """Significant digits of |x| (shortest exact repr) and the decimal exponent of the first digit."""
    d = Decimal(repr(x)).normalize()
    t = d.as_tuple()
    digits = "".join(map(str, t.digits)) or "0"
    exp = int(t.exponent) + len(digits) - 1
    return digits, exp


def _format_e(x: float, old_body: str) -> str:
    m = _E_STYLE.fullmatch(old_body)
    mant_old, e_char, sign_old, exp_old = m.groups() if m else ("1", "e", "", "1")
    if x == 0:
        return "0.0"
    digits, exp = _digits(x)
    mant = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    if "." in mant_old and "." not in mant:
        mant += ".0"
    exp_old = exp_old.replace("_", "")
    width = len(exp_old) if exp_old.startswith("0") else 1
    exp_sign = "-" if exp < 0 else ("+" if sign_old == "+" else "")
    return f"{mant}{e_char}{exp_sign}{abs(exp):0{width}d}"


def _format_decimal(x: float, old_body: str) -> str:
    s = format(Decimal(repr(x)), "f")
    if "." not in s:
        s += ".0"
    if old_body.endswith(".") and s.endswith(".0"):
        s = s[:-1]
    if old_body.startswith(".") and s.startswith("0."):
        s = s[1:]
    return s
