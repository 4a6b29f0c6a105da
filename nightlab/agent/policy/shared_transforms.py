"""Random augmentation in a transform the held-out part shares.

A Lightning DataModule, or a script, often builds one dataset with one transform and then splits it
(`full = MNIST(root, transform=self.transform)`, `random_split(full, [55000, 5000])`): the validation part is read
through the same transform as the training part. An edit that adds `RandomRotation` there — the obvious way to
add augmentation — augments the validation images too, so the score is measured on other inputs than before, and
differently at every epoch. The split statement is held by the edit guard; the transform lives elsewhere (in
`__init__`, at module level), so the guard asks this module: which transforms a split's source is built with, and
whether an edit adds a random one to them. A deterministic change (a resize, a normalisation) is the model's input
and stays free; augmentation belongs to a transform of the training part alone, after the split.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from nightlab.agent.policy.evaluation import (
    SPLIT_CALLS,
    TRANSFORM_KEYWORDS,
    called_name,
    feeding,
    function_defs,
    scope_statements,
)

__all__ = ["shared_augmentation"]

# torchvision / albumentations / kornia: `RandomRotation`, `RandAugment`, `ColorJitter`, `TrivialAugmentWide`, ...
_RANDOM = re.compile(r"Random[A-Z]\w*|Rand[A-Z]\w*|AutoAugment|TrivialAugment\w*|AugMix|ColorJitter|GaussianBlur|"
                     r"GaussNoise|ElasticTransform|CutOut|Cutout|CoarseDropout|MixUp|CutMix|ShiftScaleRotate|"
                     r"HorizontalFlip|VerticalFlip|Flip")


def _random_transforms(expr: ast.AST) -> list[str]:
    """The random transforms an expression builds (`RandomRotation(10)` inside a `Compose([...])`)."""
    return sorted(called_name(c) for c in ast.walk(expr) if isinstance(c, ast.Call)
                  and _RANDOM.fullmatch(called_name(c)))


def _shared_transforms(tree: ast.Module) -> list[str]:
    """The transforms a split's source is built with, as names: `self.transform` → "transform", `tf` → "tf"
    (`full = MNIST(..., transform=self.transform)` … `random_split(full, ...)`), and an inline one as its dump."""
    out: list[str] = []
    for scope in [tree, *function_defs(tree)]:
        stmts = scope_statements(scope)
        sources = {n.id for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call) and called_name(c) in
                   SPLIT_CALLS for a in c.args[:1] for n in ast.walk(a) if isinstance(n, ast.Name)}
        for name in sources:
            for value in feeding(stmts, name):
                for c in (c for c in ast.walk(value) if isinstance(c, ast.Call)):
                    for k in c.keywords:
                        if k.arg in TRANSFORM_KEYWORDS:
                            v = k.value
                            out.append(v.attr if isinstance(v, ast.Attribute) else v.id if isinstance(v, ast.Name)
                                       else "\0" + ",".join(_random_transforms(v)))
    return out


def _definitions(tree: ast.Module, name: str) -> Iterable[ast.AST]:
    """What assigns a transform its value: `self.transform = ...` in any method, `transform = ...` anywhere."""
    for st in ast.walk(tree):
        if isinstance(st, ast.Assign):
            for t in st.targets:
                if (isinstance(t, ast.Attribute) and t.attr == name) or (isinstance(t, ast.Name) and t.id == name):
                    yield st.value


def shared_augmentation(old: ast.Module, new: ast.Module | None) -> list[str]:
    """The random transforms an edit of one file adds to a transform the split's held-out part is read through."""
    if new is None:
        return []
    out: list[str] = []
    for name in dict.fromkeys(_shared_transforms(old)):
        if name.startswith("\0"):
            continue  # inline: the source statement itself, held with the split (a changed call is another source)
        was = [t for v in _definitions(old, name) for t in _random_transforms(v)]
        now = [t for v in _definitions(new, name) for t in _random_transforms(v)]
        added = sorted(set(now) - set(was))
        if added:
            out.append(f"{name} gains {', '.join(added)} (a random augmentation in the transform the held-out split "
                       f"shares: it would augment the validation inputs too; give the training part its own)")
    inline_old = {n for n in _shared_transforms(old) if n.startswith("\0")}
    inline_new = {n for n in _shared_transforms(new) if n.startswith("\0")}
    for n in inline_new - inline_old:
        added = sorted(set(n[1:].split(",")) - {t for o in inline_old for t in o[1:].split(",")} - {""})
        if added:
            out.append(f"the split's dataset gains {', '.join(added)} (a random augmentation the held-out split "
                       f"shares)")
    return out
