"""Model-based search over numeric knobs, in pure numpy (no optimiser library, no network).

Two regimes, because overnight budgets are tens of runs, not thousands:

- While data is scarce, *coordinate moves*: change one knob at a time by a factor of 3 (log-scaled knobs) or one
  step (linear / small integer knobs), most promising kinds first (learning rate before everything else). A move that
  made a new best is continued in the same direction from the new best (pattern search); a move that lost tries the
  other direction, then the next knob.
- Once the coordinate moves around the current best are used up, a small *TPE*: split the observations into good
  and bad by score, fit a Parzen (Gaussian kernel) density to each in the knobs' unit cube (log scale where the knob
  is log-scaled), sample candidates near the good points, changing one or two knobs of the current best at a time,
  and pick the one that maximises l(x)/g(x).

Everything here is about values: which knobs exist, their spaces, and the observations are given by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class SpaceLike(Protocol):
    """The search space of one knob (`knobs.Space` satisfies it; its `snap`, `allow_zero` and `log1m` are used if
    present)."""

    @property
    def low(self) -> float | None: ...

    @property
    def high(self) -> float | None: ...

    @property
    def log(self) -> bool: ...

    @property
    def integer(self) -> bool: ...

    @property
    def choices(self) -> Sequence[Any] | None: ...


@dataclass(frozen=True)
class Dim:
    """One searchable knob: its key, current space, and the kind (lr, batch_size, …) that sets its priority."""

    key: str
    space: SpaceLike
    kind: str = ""


@dataclass(frozen=True)
class Observation:
    """Knob values of one finished run and its score (higher is better: the caller flips minimised metrics)."""

    values: Mapping[str, Any]
    score: float


@dataclass(frozen=True)
class Suggestion:
    """A change to the current best: knob key → new value, and a sentence saying why."""

    changes: dict[str, Any]
    reason: str
    method: str  # "coordinate" | "tpe"


# ----------------------------------------------------------------------------------------------- values


def nice(value: float, integer: bool = False, kind: str = "") -> float | int:
    """Round a proposed value to something a person would write: 2 significant digits, powers of two for batch sizes."""
    if integer:
        v = max(1, round(value)) if value >= 1 else round(value)
        if kind in ("batch_size",) and v >= 4:
            return int(2 ** round(math.log2(v)))
        if kind in ("width", "hidden", "embed") and v >= 24:
            return int(round(v / 8) * 8)
        return v
    if value == 0 or not math.isfinite(value):
        return value
    mag = math.floor(math.log10(abs(value)))
    return float(round(value, -mag + 1))


def _log1m(space: SpaceLike) -> bool:
    """Whether the space is searched on log(1 − x) (a momentum, β or EMA decay: see `knobs.Space`)."""
    return bool(getattr(space, "log1m", False))


def to_unit(value: Any, space: SpaceLike) -> float | None:
    """Map a value into [0, 1] of its space (log scale for log spaces, −log(1 − x) for averaging coefficients); None
    if it is not numeric or the space is not."""
    if space.choices:
        try:
            return list(space.choices).index(value) / max(1, len(space.choices) - 1)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or space.low is None or space.high is None:
        return None
    lo, hi, v = float(space.low), float(space.high), float(value)
    if _log1m(space):
        if hi >= 1 or v >= 1:
            return None
        lo, hi, v = -math.log1p(-lo), -math.log1p(-hi), -math.log1p(-min(max(v, lo), hi))
    elif space.log:
        if lo <= 0 or v <= 0:
            return None
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    if hi <= lo:
        return None
    return min(1.0, max(0.0, (v - lo) / (hi - lo)))


def from_unit(u: float, space: SpaceLike, kind: str = "") -> Any:
    """Inverse of `to_unit`, snapped to a nice value inside the space."""
    u = min(1.0, max(0.0, u))
    if space.choices:
        return list(space.choices)[round(u * (len(space.choices) - 1))]
    assert space.low is not None and space.high is not None
    lo, hi = float(space.low), float(space.high)
    if _log1m(space):
        t_lo, t_hi = -math.log1p(-lo), -math.log1p(-hi)
        v = -math.expm1(-(t_lo + u * (t_hi - t_lo)))
    elif space.log:
        v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        v = lo + u * (hi - lo)
    return snap(v, space, kind)


def snap(value: float, space: SpaceLike, kind: str = "") -> Any:
    """Clip into the space and round to a value a person would write (the space's own `snap` when it has one)."""
    if space.integer and abs(value) >= 100:  # 1822 steps reads as noise; 1800 as a decision
        value = float(nice(value))
    own = getattr(space, "snap", None)
    if own is not None and not space.choices:
        try:
            return own(value, sig=2)
        except TypeError:
            return own(value)
    return clip(nice(value, space.integer, kind), space)


def clip(value: Any, space: SpaceLike) -> Any:
    if space.choices or not isinstance(value, (int, float)):
        return value
    if space.low is not None and value < space.low:
        value = space.low
    if space.high is not None and value > space.high:
        value = space.high
    if not space.integer:
        return value
    m = int(getattr(space, "multiple", 0) or 0)
    if m > 1:  # a width split over heads: the nearest multiple inside the space
        lo = math.ceil(float(space.low) / m) * m if space.low is not None else m
        hi = math.floor(float(space.high) / m) * m if space.high is not None else None
        value = max(lo, round(value / m) * m)
        return min(value, hi) if hi is not None and hi >= lo else value
    return round(value)


def same(a: Any, b: Any) -> bool:
    """Numeric values equal up to rounding noise; anything else by ==."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return bool(a == b)


# ----------------------------------------------------------------------------------------------- coordinate moves


def step_values(value: Any, dim: Dim, factor: float = 3.0) -> list[Any]:
    """Neighbours of `value` along one knob: ×factor and ÷factor on log scales (on 1 − x for a momentum or β, so
    0.9 → 0.97 / 0.7 and 0.99 → 0.997 / 0.97), ± a fifth of the range on linear ones, ±1 (or ×2/÷2) on integers, the
    other options on choices. Values outside the space are clipped; values equal to the current one dropped."""
    sp = dim.space
    if sp.choices:
        return [c for c in sp.choices if not same(c, value)]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return []
    out: list[Any] = []
    if value == 0 and getattr(sp, "allow_zero", False) and sp.low is not None and sp.high is not None:
        # zero means "off" (no weight decay, no clipping): switch it on at a typical value
        typical = {"weight_decay": 0.01, "clip": 1.0}.get(dim.kind, math.sqrt(float(sp.low) * float(sp.high)))
        return [snap(typical, sp, dim.kind)]
    if _log1m(sp) and 0 <= value < 1:
        cands = [1 - (1 - value) / factor, 1 - (1 - value) * factor]
    elif sp.log and value > 0:
        cands = [value * factor, value / factor]
    elif sp.integer and abs(value) <= 4:
        cands = [value + 1, value - 1]
    elif sp.low is not None and sp.high is not None:
        span = (float(sp.high) - float(sp.low)) / 5.0
        cands = [value + span, value - span]
    else:
        cands = [value * 2 if value else 0.1, value / 2]
    for c in cands:
        c = snap(c, sp, dim.kind)
        if not same(c, value) and not any(same(c, o) for o in out):
            out.append(c)
    return out


def coordinate_moves(current: Mapping[str, Any], dims: Sequence[Dim], history: Sequence[Observation],
                     prefer_up: Callable[[Dim], bool] | None = None) -> list[Suggestion]:
    """One-knob moves from the current best, in priority order (dims are already ordered by the caller).

    For each knob the direction that history favours comes first: if a run with a larger value scored better than
    one with a smaller value (other knobs equal), larger first; without evidence, `prefer_up(dim)` decides.
    """
    out: list[Suggestion] = []
    for d in dims:
        cur = current.get(d.key)
        if cur is None:
            continue
        vals = step_values(cur, d)
        if len(vals) == 2 and isinstance(cur, (int, float)):
            up_first = _evidence_up(d.key, current, history)
            if up_first is None:
                up_first = prefer_up(d) if prefer_up else True
            up, down = (vals[0], vals[1]) if vals[0] > vals[1] else (vals[1], vals[0])
            vals = [up, down] if up_first else [down, up]
        for v in vals:
            verb = "raise" if isinstance(cur, (int, float)) and isinstance(v, (int, float)) and v > cur else "lower"
            if d.space.choices:
                verb = "switch"
            out.append(Suggestion({d.key: v}, f"{verb} {d.key} from {cur} to {v} (one knob at a time while results "
                                               "are few)", "coordinate"))
    return out


def _evidence_up(key: str, current: Mapping[str, Any], history: Sequence[Observation]) -> bool | None:
    """Whether, among runs that differ from `current` only in `key`, larger values scored better (None: no data)."""
    pts: list[tuple[float, float]] = []
    for o in history:
        v = o.values.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if all(same(o.values.get(k), cv) for k, cv in current.items() if k != key):
            pts.append((float(v), o.score))
    if len(pts) < 2:
        return None
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    if np.all(xs == xs[0]) or np.all(ys == ys[0]):
        return None
    corr = np.corrcoef(np.log(np.maximum(xs, 1e-12)) if np.all(xs > 0) else xs, ys)[0, 1]
    if not np.isfinite(corr) or abs(corr) < 0.2:
        return None
    return bool(corr > 0)


# ----------------------------------------------------------------------------------------------- TPE


def _kde(x: float, pts: np.ndarray, bw: float) -> float:
    """Parzen density at x from points in [0, 1], mixed with a uniform prior so it is never zero."""
    prior = 1.0
    if len(pts) == 0:
        return prior
    dens = np.exp(-0.5 * ((x - pts) / bw) ** 2) / (bw * math.sqrt(2 * math.pi))
    return float((dens.sum() + prior) / (len(pts) + 1))


def _bandwidth(pts: np.ndarray) -> float:
    if len(pts) < 2:
        return 0.25
    return float(min(0.5, max(0.06, 1.06 * float(np.std(pts)) * len(pts) ** (-0.2))))


def tpe_suggest(history: Sequence[Observation], dims: Sequence[Dim], current: Mapping[str, Any],
                rng: Any, tried: Callable[[dict[str, Any]], bool], n_candidates: int = 96,
                gamma: float = 0.3, max_changed: int = 2) -> Suggestion | None:
    """A TPE-like suggestion: changes to 1..max_changed knobs of `current` that maximise l(x)/g(x).

    `rng` is a `random.Random` (the context's, so runs are reproducible); `tried(changes)` says whether applying
    these changes to the current best gives an assignment already run or proposed.
    """
    usable = [d for d in dims if to_unit(current.get(d.key), d.space) is not None]
    if not usable:
        return None
    obs = [o for o in history if math.isfinite(o.score)]
    obs.sort(key=lambda o: o.score, reverse=True)
    n_good = max(1, math.ceil(gamma * len(obs)))
    good, bad = obs[:n_good], obs[n_good:]

    def unit_points(group: Sequence[Observation], d: Dim) -> np.ndarray:
        us = [to_unit(o.values.get(d.key), d.space) for o in group]
        return np.array([u for u in us if u is not None], dtype=float)

    model = {d.key: (unit_points(good, d), unit_points(bad, d)) for d in usable}
    bws = {k: (_bandwidth(g), _bandwidth(b)) for k, (g, b) in model.items()}
    best: tuple[float, dict[str, Any]] | None = None
    seen: list[dict[str, Any]] = []
    for _ in range(n_candidates):
        k = 1 if len(usable) == 1 else rng.randint(1, min(max_changed, len(usable)))
        chosen = rng.sample(usable, k)
        changes: dict[str, Any] = {}
        score = 0.0
        for d in chosen:
            g_pts, b_pts = model[d.key]
            g_bw, b_bw = bws[d.key]
            if len(g_pts) and rng.random() < 0.8:
                center = float(g_pts[rng.randrange(len(g_pts))])
                u = rng.gauss(center, g_bw)
            else:
                u = rng.random()
            v = from_unit(u, d.space, d.kind)
            uu = to_unit(v, d.space)
            u_cur = to_unit(current.get(d.key), d.space)
            if same(v, current.get(d.key)) or uu is None or (u_cur is not None and abs(uu - u_cur) < 0.04):
                continue  # no change, or one too small to tell from seed noise
            changes[d.key] = v
            score += math.log(_kde(uu, g_pts, g_bw)) - math.log(_kde(uu, b_pts, b_bw))
        if not changes or any(c == changes for c in seen):
            continue
        seen.append(changes)
        if tried(changes):
            continue
        if best is None or score > best[0]:
            best = (score, changes)
    if best is None:
        return None
    desc = ", ".join(f"{k} {current.get(k)} → {v}" for k, v in best[1].items())
    return Suggestion(best[1], f"model-based search (TPE over {len(obs)} results, {len(good)} good): {desc} has the "
                               "highest ratio of good-to-bad result density", "tpe")


def suggest(history: Sequence[Observation], dims: Sequence[Dim], current: Mapping[str, Any], rng: Any,
            tried: Callable[[dict[str, Any]], bool], prefer_up: Callable[[Dim], bool] | None = None,
            min_tpe: int = 8) -> Suggestion | None:
    """The next knob change: coordinate moves first; TPE once they are used up (or as soon as data is plentiful and
    the remaining coordinate moves are on low-priority knobs)."""
    coords = [s for s in coordinate_moves(current, dims, history, prefer_up) if not tried(s.changes)]
    if coords and len(history) < min_tpe:
        return coords[0]
    if len(history) >= min_tpe:
        tpe = tpe_suggest(history, dims, current, rng, tried)
        top = {d.key for d in dims[:2]}
        if coords and (tpe is None or next(iter(coords[0].changes)) in top):
            return coords[0]
        if tpe is not None:
            return tpe
    if coords:
        return coords[0]
    return tpe_suggest(history, dims, current, rng, tried)
