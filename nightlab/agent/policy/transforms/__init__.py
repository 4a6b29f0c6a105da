"""Known code transformations for PyTorch training scripts, written with libcst.

Each transform recognises one well-understood pattern (an SGD optimizer, a `loss.backward()` without clipping, a
training loop whose length is computable, raw un-standardised inputs, …) and rewrites it into the version that
usually trains better. The rules every transform follows, because the builtin policy applies them unattended:

- It either applies completely or not at all: any doubt (two optimizers, a conditional `step()`, a loop whose
  length cannot be computed, a name that might not be in scope) returns None instead of a half-applied change.
- It never edits code that measures rather than trains: the functions that compute the printed metric and those
  whose name says evaluation / test / scoring / data loading, unless they train (see `evaluation/`; nothing is
  decided from comments or layout). Protected files are never handed to a transform at all.
- Everything it inserts is self-contained (helpers import what they need) so the result runs as it stands.

The result is the whole new file text; `diff_edits` turns old/new texts into the exact search/replace `Edit`s that
the engine validates with `apply_edits`.

The rooms: `script` (the parsed script, patching, edits), `optimizer` (SGD → AdamW, clipping, warm-up + cosine),
`inputs` (standardisation), `regularisers` (dropout, weight decay, label smoothing), `shape_fix` (a Linear layer
sized for other inputs); this module holds the registry the policies draw from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from nightlab.agent.policy.transforms.inputs import standardize_inputs
from nightlab.agent.policy.transforms.optimizer import gradient_clipping, sgd_to_adamw, warmup_cosine
from nightlab.agent.policy.transforms.regularisers import add_dropout, add_weight_decay, label_smoothing
from nightlab.agent.policy.transforms.script import (
    OPTIMIZER_CLASSES,
    Patch,
    Script,
    TransformResult,
    diff_edits,
    dotted,
    parse,
    render,
)
from nightlab.agent.policy.transforms.shape_fix import fix_linear_in_features, parse_matmul_mismatch

__all__ = [
    "OPTIMIZER_CLASSES",
    "TRANSFORMS",
    "Patch",
    "Script",
    "TransformResult",
    "add_dropout",
    "add_hidden_layer",
    "add_weight_decay",
    "applicable",
    "diff_edits",
    "dotted",
    "fix_linear_in_features",
    "gradient_clipping",
    "label_smoothing",
    "parse",
    "parse_matmul_mismatch",
    "render",
    "sgd_to_adamw",
    "standardize_inputs",
    "warmup_cosine",
]


def add_hidden_layer(text: str, path: str, evaluation: Collection[str] = ()) -> TransformResult | None:
    """One more hidden layer in a layer-by-layer `nn.Sequential` (see depth.py, which builds on this module)."""
    from nightlab.agent.policy import depth

    return depth.add_hidden_layer(text, path, evaluation)


TRANSFORMS: dict[str, Callable[..., TransformResult | None]] = {
    "sgd_to_adamw": sgd_to_adamw,
    "warmup_cosine": warmup_cosine,
    "standardize": standardize_inputs,
    "grad_clip": gradient_clipping,
    "dropout": add_dropout,
    "weight_decay": add_weight_decay,
    "label_smoothing": label_smoothing,
    "deepen": add_hidden_layer,
}


def applicable(text: str, path: str, names: Sequence[str] | None = None,
               evaluation: Collection[str] = ()) -> list[TransformResult]:
    """All transforms (by name, default every one) that apply to a file; a failing transform is just skipped."""
    out = []
    for name in names or list(TRANSFORMS):
        try:
            r = TRANSFORMS[name](text, path, evaluation=evaluation)
        except Exception:  # a transform bug must never take the policy down; the script is left alone
            r = None
        if r is not None:
            out.append(r)
    return out
