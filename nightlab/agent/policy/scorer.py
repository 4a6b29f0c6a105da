"""The learned policy's model: a small scorer of candidate moves, its file, and its one-step online update.

    score(s, a) = u · x  +  v · tanh(W x + b)          x = the step's state features and the move's features

A linear part and one tanh hidden layer (16 units by default) over the named features of policy/features.py. It is
trained with torch by `nightlab learn` (agent/learn.py) and saved as JSON (a few kB, versioned); the policy loads
and scores with numpy in milliseconds, so a session never imports torch. A fresh model starts with u = −PRIOR on the
feature `m.rank` (the move's place in the builtin policy's order) and v = 0, so before learning it ranks the moves
exactly as the builtin policy does; training moves it away only as far as the experience supports.

The model also carries its *support*: how many times each class of move (its source, knob kind, transform and
direction: `move_class`) was taken in the steps it learned from. The learned policy lets a move overtake the
builtin's order only where that count reaches `[learned] min_support` (policy/learned.py) — the safe policy
improvement of SPIBB (Laroche, Trichelair and Tachet des Combes, 2019): where the data are thin, keep the baseline's
choice. A model file without support counts (written before they existed) therefore changes nothing until it is
trained again. It carries *outcomes* too: for each class of move in each regime of the best run (`outcome_class`:
the knob kind or transform, the direction, and whether the best run was underfitting, overfitting or neither), how
many steps took it and the sum and the sum of squares of their advantages. That is what the learned policy weighs a
move the builtin never makes by (policy/learned.py). The regime is there because the same move pays in one and not
in the other (a wider network pays when the best run is underfitting, not when it fits its data already); the source
is not, so a second widening is judged by how widening fared in that regime, whoever proposed it. A file whose
outcomes were counted otherwise (written before) never takes such a move until it is trained again.

The online update is one step of the same duration-weighted policy gradient `nightlab learn` uses (see
agent/learn.py for the formulation), on one step, done with numpy: the gradient of a one-hidden-layer network is
written out by hand below.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nightlab.errors import NightlabError

FORMAT = "nightlab-learned-policy"
VERSION = 1
PRIOR = 3.0  # how strongly a fresh model keeps the builtin's order (a rank difference of one candidate list ≈ 3)
RANK_FEATURE = "m.rank"
# the features that say what a move is (not how it ranks or how it fared): its class, for the support counts
CLASS_PREFIXES = ("m.src.", "m.kind.", "m.tf.")
DIRECTIONS = ("m.up", "m.down")
# the best run's regime an outcome is counted in (the pathologies of policy/features.py, as state features)
REGIMES = ("underfitting", "overfitting")
OUTCOME_CLASSES = "move|direction|regime"  # how the file's outcomes are keyed; files keyed otherwise are not read


def move_class(features: Mapping[str, float]) -> str:
    """What kind of move a candidate is, from its features alone: "src.search|kind.lr|down" and the like."""
    parts = sorted(k[2:] for k, v in features.items() if v and k.startswith(CLASS_PREFIXES))
    parts += [k[2:] for k in DIRECTIONS if features.get(k)]
    return "|".join(parts) or "other"


def regime(state: Mapping[str, float]) -> str:
    """The best run's regime at a step, from its diagnosed pathologies: underfitting, overfitting, or neither."""
    return next((r for r in REGIMES if state.get(f"s.path.{r}")), "neither")


def outcome_class(state: Mapping[str, float], features: Mapping[str, float]) -> str:
    """What a move does, in which regime: "kind.width|up|underfitting", "tf.dropout|overfitting" — its knob kind or
    transform (its source when it has neither), its direction, and the best run's regime (never its source)."""
    what = sorted(k[2:] for k, v in features.items() if v and k.startswith(("m.kind.", "m.tf.")))
    what = what or sorted(k[2:] for k, v in features.items() if v and k.startswith("m.src."))
    way = next((k[2:] for k in DIRECTIONS if features.get(k)), "")
    return "|".join(part for part in ("+".join(what) or "other", way, regime(state)) if part)


class Bound(NamedTuple):
    """How a class of move fared in the data: n outcomes, their mean advantage and that mean less z standard
    errors (a one-sided confidence bound)."""

    n: int
    mean: float
    low: float


class ModelError(NightlabError):
    """A model file that cannot be used; the message names the file and what is wrong."""


@dataclass
class Scorer:
    features: list[str]
    u: np.ndarray  # (F,)
    w: np.ndarray  # (H, F)
    b: np.ndarray  # (H,)
    v: np.ndarray  # (H,)
    meta: dict[str, Any] = field(default_factory=dict)
    support: dict[str, int] = field(default_factory=dict)  # move_class -> times such a move was taken in training
    # outcome_class -> [n, Σ A, Σ A²] of the advantages (reward − its project's mean reward) of the steps that took it
    outcomes: dict[str, list[float]] = field(default_factory=dict)

    def support_of(self, features: Mapping[str, float]) -> int:
        return self.support.get(move_class(features), 0)

    def add_support(self, features: Mapping[str, float]) -> None:
        key = move_class(features)
        self.support[key] = self.support.get(key, 0) + 1

    def add_outcome(self, state: Mapping[str, float], features: Mapping[str, float], advantage: float) -> None:
        key = outcome_class(state, features)
        n, total, squares = self.outcomes.get(key, [0.0, 0.0, 0.0])
        self.outcomes[key] = [n + 1, total + advantage, squares + advantage * advantage]

    def advantage_bound(self, state: Mapping[str, float], features: Mapping[str, float], z: float) -> Bound | None:
        """How this class of move fared in this regime in the data (see `Bound`); None with fewer than two
        outcomes (no spread to bound it by)."""
        return self.bound_of(outcome_class(state, features), z)

    def bound_of(self, key: str, z: float) -> Bound | None:
        n, total, squares = self.outcomes.get(key, [0.0, 0.0, 0.0])
        if n < 2:
            return None
        mean = total / n
        var = max(0.0, (squares - n * mean * mean) / (n - 1))
        return Bound(int(n), mean, mean - z * math.sqrt(var / n))

    @classmethod
    def fresh(cls, features: Sequence[str], hidden: int = 16, seed: int = 0) -> Scorer:
        feats = list(features)
        rng = np.random.default_rng(seed)
        u = np.zeros(len(feats))
        if RANK_FEATURE in feats:
            u[feats.index(RANK_FEATURE)] = -PRIOR
        return cls(features=feats, u=u, w=rng.normal(0.0, 0.1, (hidden, len(feats))), b=np.zeros(hidden),
                   v=np.zeros(hidden))

    # ----------------------------------------------------------------------------------------- scoring
    def matrix(self, state: Mapping[str, float], candidates: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The inputs of a step's candidates, one row each (features this model does not know are left out)."""
        index = {n: i for i, n in enumerate(self.features)}
        x = np.zeros((len(candidates), len(self.features)))
        for name, value in state.items():
            j = index.get(name)
            if j is not None:
                x[:, j] = value
        for r, cand in enumerate(candidates):
            for name, value in cand.items():
                j = index.get(name)
                if j is not None:
                    x[r, j] = value
        return x

    def scores(self, state: Mapping[str, float], candidates: Sequence[Mapping[str, float]]) -> np.ndarray:
        x = self.matrix(state, candidates)
        return np.asarray(x @ self.u + np.tanh(x @ self.w.T + self.b) @ self.v)

    # ----------------------------------------------------------------------------------------- learning
    def update(self, state: Mapping[str, float], candidates: Sequence[Mapping[str, float]], chosen: int,
               advantage: float, lr: float) -> None:
        """One gradient step raising (advantage > 0) or lowering the log-probability of the move taken."""
        x = self.matrix(state, candidates)
        h = np.tanh(x @ self.w.T + self.b)
        s = x @ self.u + h @ self.v
        p = np.exp(s - s.max())
        p /= p.sum()
        g = -p  # d log softmax(s)[chosen] / ds
        g[chosen] += 1.0
        g *= advantage
        self.u += lr * (g @ x)
        self.v += lr * (g @ h)
        dpre = (g[:, None] * self.v[None, :]) * (1.0 - h * h)  # (C, H)
        self.w += lr * (dpre.T @ x)
        self.b += lr * dpre.sum(axis=0)

    # ----------------------------------------------------------------------------------------- the file
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "features": self.features, "hidden": int(self.v.shape[0]),
                "u": self.u.tolist(), "w": self.w.tolist(), "b": self.b.tolist(), "v": self.v.tolist(),
                "meta": self.meta, "support": self.support, "outcomes": self.outcomes,
                "outcome_classes": OUTCOME_CLASSES}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Scorer:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise ModelError(f"{path}: not a readable model file ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"{path}: not a nightlab learned-policy model (no format {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ModelError(f"{path}: model version {data.get('version')}; this nightlab reads version {VERSION} "
                             "(run `nightlab learn` again)")
        try:
            feats = [str(f) for f in data["features"]]
            u, w = np.asarray(data["u"], float), np.asarray(data["w"], float).reshape(-1, len(feats))
            b, v = np.asarray(data["b"], float), np.asarray(data["v"], float)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{path}: damaged model file ({err})") from None
        if u.shape != (len(feats),) or w.shape[0] != b.shape[0] or v.shape != b.shape or \
                not all(math.isfinite(float(x)) for x in (u.sum(), w.sum(), b.sum(), v.sum())):
            raise ModelError(f"{path}: damaged model file (shapes or values do not fit)")
        raw = data.get("support") or {}
        if not isinstance(raw, dict) or not all(isinstance(n, int) and n >= 0 for n in raw.values()):
            raise ModelError(f"{path}: damaged model file (support counts are not counts)")
        outcomes = data.get("outcomes") or {}
        if not isinstance(outcomes, dict) or not all(
                isinstance(o, list) and len(o) == 3 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in o)
                for o in outcomes.values()):
            raise ModelError(f"{path}: damaged model file (outcomes are not [n, sum, sum of squares])")
        if data.get("outcome_classes") != OUTCOME_CLASSES:
            outcomes = {}  # counted by another class of move (an older nightlab): vouching for no move beyond
        return cls(features=feats, u=u, w=w, b=b, v=v, meta=dict(data.get("meta") or {}),
                   support={str(k): int(n) for k, n in raw.items()},
                   outcomes={str(k): [float(x) for x in o] for k, o in outcomes.items()})


def default_model_path() -> Path:
    """`$XDG_DATA_HOME/nightlab/policy.json`, where `nightlab learn` writes and the learned policy reads."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nightlab" / "policy.json"


__all__ = ["FORMAT", "OUTCOME_CLASSES", "PRIOR", "REGIMES", "VERSION", "Bound", "ModelError", "Scorer",
           "default_model_path", "move_class", "outcome_class", "regime"]
