"""What a person's rejections tell the offline policies: the change they said no to, and what they asked for.

A proposal rejected by a person (not refused by the engine) comes with its change — knob values, a code
transformation — and maybe feedback ("try a wider model first", "lower the learning rate instead"). Two uses:
the rejected change is never proposed again, on any parent; and a knob or change type the feedback names is
tried before the rest. The words are matched against the knobs the policy discovered (their names and kinds) and
the transformation names, with a few plain-English names for the common kinds; nothing keys on how one project is
laid out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# plain words people use for a kind of knob (kinds as nightlab.agent.policy.knobs names them)
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "lr": ("lr", "learning rate", "learning-rate", "step size"),
    "width": ("width", "wider", "narrower", "hidden", "units", "neurons", "channels", "bigger model",
              "larger model", "smaller model"),
    "depth": ("depth", "deeper", "shallower", "layers"),
    "batch_size": ("batch",),
    "dropout": ("dropout",),
    "weight_decay": ("weight decay", "weight_decay", "regularization", "regularisation", "l2"),
    "epochs": ("epochs", "epoch", "train longer", "longer training"),
    "steps": ("steps", "iterations", "train longer", "longer training"),
    "momentum": ("momentum",),
    "warmup": ("warmup", "warm-up", "warm up"),
}


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text) is not None


@dataclass
class Rejections:
    """The changes people rejected and what their feedback asked for (knob keys, transformation names)."""

    changes: set[frozenset[tuple[str, Any]]] = field(default_factory=set)  # knob key -> value, per rejected change
    transforms: set[str] = field(default_factory=set)
    wanted_knobs: set[str] = field(default_factory=set)
    wanted_transforms: set[str] = field(default_factory=set)

    def refuses(self, changes: Mapping[str, Any], transform: str | None, norm: Any = lambda v: v) -> bool:
        """Whether a move is a change a person rejected (the same knob values, or the same transformation)."""
        if transform is not None and transform in self.transforms:
            return True
        return bool(changes) and frozenset((k, norm(v)) for k, v in changes.items()) in self.changes

    def wants(self, changes: Mapping[str, Any], transform: str | None) -> bool:
        """Whether a move touches what the feedback asked for."""
        return (transform is not None and transform in self.wanted_transforms) or \
            any(k in self.wanted_knobs for k in changes)


def read_rejections(feedback: Mapping[int, str], deltas: Mapping[int, tuple[dict[str, Any], str | None]],
                    knob_kinds: Mapping[str, str], transform_names: Iterable[str]) -> Rejections:
    """`feedback`: experiment id -> what the person wrote ("" when nothing); `deltas`: experiment id -> its change
    (knob values that differ from its parent's, the transformation it applied); `knob_kinds`: knob key -> kind."""
    out = Rejections()
    names = list(transform_names)
    for exp_id, text in feedback.items():
        changes, transform = deltas.get(exp_id, ({}, None))
        if changes:
            out.changes.add(frozenset(changes.items()))
        if transform:
            out.transforms.add(transform)
        low = text.lower()
        if not low.strip():
            continue
        for key, kind in knob_kinds.items():
            leaf = key.rsplit(".", 1)[-1].lower()
            if _mentions(low, leaf) or _mentions(low, leaf.replace("_", " ")) or \
                    any(_mentions(low, w) for w in KIND_WORDS.get(kind, ())):
                out.wanted_knobs.add(key)
        for name in names:
            words = [w for w in name.lower().split("_") if len(w) > 2 and w != "to"]
            if _mentions(low, name.lower()) or any(_mentions(low, w) for w in words):
                out.wanted_transforms.add(name)
    # a change the person rejected is not what they asked for, even where their words name its knob
    return out


__all__ = ["KIND_WORDS", "Rejections", "read_rejections"]
