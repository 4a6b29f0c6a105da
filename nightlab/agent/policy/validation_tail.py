"""Keras' `fit(x, y, validation_split=0.15)`: the held-out rows are the last 15 % of `x` as it is handed over.

Nothing splits the data in the script, so no split statement is there for the edit guard to hold: the split is the
order and the length of the arrays at the fit. An edit that shuffles them first (`perm = rng.permutation(len(x))`,
`x, y = x[perm], y[perm]`, `sklearn.utils.shuffle(x, y)`) or keeps some rows (`x = x[:20000]`) picks other
validation rows — a lucky draw is no improvement. A change of the columns (`x[:, :100]`), a scaling, or a reshape
keeps every row where it was and stays free.
"""

from __future__ import annotations

import ast
from collections import Counter

from nightlab.agent.policy.evaluation import called_name, function_defs, scope_statements, target_names

__all__ = ["validation_tail_changes"]

_REORDERING = frozenset({"shuffle", "permutation", "permuted", "sample", "resample", "sort_values", "concatenate",
                         "vstack", "append"})


def _tail_arrays(stmts: list[ast.stmt]) -> set[str]:
    """The names handed to a fit that takes its validation rows from their tail."""
    return {n.id for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call) and called_name(c) == "fit"
            and any(k.arg == "validation_split" for k in c.keywords)
            for a in [*c.args[:2], *(k.value for k in c.keywords if k.arg in ("x", "y"))] if isinstance(a, ast.Name)
            for n in [a]}


def _rows_selected(sub: ast.Subscript) -> bool:
    """A subscript that picks rows: `x[perm]`, `x[:1000]`, `x[mask]`; not `x[:, :100]` (every row, some columns)."""
    key = sub.slice
    first = key.elts[0] if isinstance(key, ast.Tuple) and key.elts else key
    return not (isinstance(first, ast.Slice) and first.lower is None and first.upper is None and first.step is None) \
        and not (isinstance(first, ast.Constant) and first.value is Ellipsis)


def _reorders(st: ast.stmt, arrays: set[str]) -> bool:
    """Whether a statement changes which rows the arrays hold or their order."""
    if isinstance(st, ast.Assign) and any(target_names(t) & arrays for t in st.targets):
        for n in ast.walk(st.value):
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id in arrays and \
                    _rows_selected(n):
                return True
            if isinstance(n, ast.Call) and called_name(n) in _REORDERING:
                return True
        return False
    if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and called_name(st.value) in _REORDERING:
        return any(isinstance(a, ast.Name) and a.id in arrays for a in st.value.args)  # `np.random.shuffle(x)`
    return False


def _reordering(tree: ast.Module) -> Counter[str]:
    out: Counter[str] = Counter()
    for scope in [tree, *function_defs(tree)]:
        stmts = scope_statements(scope)
        arrays = _tail_arrays(stmts)
        if arrays:
            out.update(f"{getattr(scope, 'name', '')}\0{ast.dump(st)}" for st in stmts if _reorders(st, arrays))
    return out


def validation_tail_changes(old: ast.Module, new: ast.Module | None) -> list[str]:
    """What an edit of one file does to the rows a `fit(..., validation_split=)` takes its validation tail from."""
    if new is None or not _reordering(new) - _reordering(old):
        return []
    return ["the rows handed to fit(validation_split=…) are reordered or cut (Keras holds out their last part as "
            "they come: other rows would be measured)"]
